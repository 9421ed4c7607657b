"""The adapter server: one model package behind the Open Inference Protocol over gRPC.

    python -m meshserve.adapters.server PACKAGE_DIR --listen 127.0.0.1:9001 [--rest-listen 127.0.0.1:9002]

With --rest-listen it also serves the protocol's REST binding, over the same data plane
(rest_listener.py), so Envoy's front can route REST inferences straight to it.

The inference messages and stubs are tritonclient's generated ones (see
docs/architecture.md for why the project's own .proto is not compiled for Python).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

import meshserve
from meshserve.adapters.dataplane import ModelService
from meshserve.adapters.readiness import follow_readiness
from meshserve.adapters.statistics import InferenceStatistics
from meshserve.core.errors import ManifestError, MeshError, ModelNotFound, abort, quoted
from meshserve.core.grpc_server import (
    add_health_and_reflection, create_server, run_server, serve_until_stopped, start_serving)
from meshserve.core.message_guard import add_guarded
from meshserve.core.mesh_protocol import (
    REQUEST_ID_HEADER, CallInfo, adapter_ready_line, model_config, usable_request_id)
from meshserve.core.inference_stream import answer_stream
from meshserve.core.unserved_methods import UNSERVED, UnservedMethods
from meshserve.core.model_package import load_package
from meshserve.core.observers import Observer, Observers
from meshserve.observability.telemetry import adapter_telemetry
from meshserve.sidecars.records.observer import adapter_record_observer

log = logging.getLogger("meshserve.adapter")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name


def call_of(context: grpc.aio.ServicerContext, request: pb.ModelInferRequest, streamed: bool = False) -> CallInfo:
    """Who is asking: the request id, the traffic role Envoy stamped (direct calls are primary),
    and the caller's deadline (a stream's, for each message of the stream). The messages of a
    stream share one set of headers, so there each message's own id comes first."""
    call = CallInfo.from_metadata(context.invocation_metadata(), request.id, context.time_remaining())
    return dataclasses.replace(call, request_id=request.id) if streamed and usable_request_id(request.id) else call


class AdapterInferenceServicer(UnservedMethods, pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, service: ModelService, statistics: InferenceStatistics | None = None):
        self.service = service
        self.statistics = statistics or InferenceStatistics(service.package.name, service.package.version)

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=await self.service.runtime.ready())

    async def ModelReady(self, request, context):
        ready = self.service.serves(request.name, request.version) and await self.service.runtime.ready()
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name="meshserve-adapter", version=meshserve.__version__,
                                         extensions=["classification", "model_configuration", "statistics"])

    async def ModelMetadata(self, request, context):
        if not self.service.serves(request.name, request.version):
            await abort(context, self._not_found(request.name, request.version))
        return self.service.metadata()

    async def ModelConfig(self, request, context):
        if not self.service.serves(request.name, request.version):
            await abort(context, self._not_found(request.name, request.version))
        try:
            config = await self.service.runtime.model_config()
        except Exception as exc:  # Triton restarting: say so rather than describe another model
            await abort(context, MeshError(f"the model's server did not give its configuration ({exc}); retry shortly",
                                           grpc.StatusCode.UNAVAILABLE))
        return pb.ModelConfigResponse(config=config) if config is not None else model_config(self.service.package)

    async def ModelStatistics(self, request, context):
        if request.name and not self.service.serves(request.name, request.version):
            await abort(context, self._not_found(request.name, request.version))
        return pb.ModelStatisticsResponse(model_stats=[self.statistics.snapshot()])

    async def RepositoryIndex(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "an adapter serves one model; ask the mesh's router "
                                                           "(the address `meshserve up` prints) for the repository")

    RepositoryModelLoad = RepositoryModelUnload = RepositoryIndex

    async def ModelInfer(self, request, context):
        call = call_of(context, request)
        # Clients straight behind Envoy's front read the request id here, answered or not.
        context.set_trailing_metadata(((REQUEST_ID_HEADER, call.request_id),))
        try:
            if not self.service.serves(request.model_name, request.model_version):
                raise self._not_found(request.model_name, request.model_version)
            return await self.service.infer(request, call)
        except Exception as exc:
            await abort(context, exc)

    async def ModelStreamInfer(self, request_iterator, context):
        async def answer(request, call):
            if not self.service.serves(request.model_name, request.model_version):
                raise self._not_found(request.model_name, request.model_version)
            return await self.service.infer(request, call)

        async for message in answer_stream(request_iterator, lambda request: call_of(context, request, streamed=True),
                                           answer):
            yield message

    def _not_found(self, name: str, version: str) -> ModelNotFound:
        package = self.service.package
        return ModelNotFound(f"this adapter serves {package.name} version {package.version}, "
                             f"not {quoted(name)}{' version ' + quoted(version) if version else ''}")


async def serve(package_dir: str, listen: str, observers: list[Observer] | None = None,
                interceptors: list[grpc.aio.ServerInterceptor] | None = None, rest_listen: str = "",
                tap_listen: str = "") -> None:
    package = load_package(package_dir)
    if tap_listen:
        from meshserve.adapters.triton.tap import check_tap_runtime

        check_tap_runtime(package)  # refused before any model loads
    telemetry = adapter_telemetry(package)
    statistics = InferenceStatistics(package.name, package.version)
    observers = [*telemetry.observers, statistics, *(observers or ())]
    recorder = adapter_record_observer(package, label=f"{package.name}-{package.version}")
    if recorder is not None:
        observers.append(recorder)
    service = await ModelService.start(package, Observers(observers))
    if service.batcher is not None:
        telemetry.watch_queue(package.name, package.version, lambda: service.batcher.queued)
    server = create_server([*telemetry.interceptors, *(interceptors or ())])
    add_guarded(pb_grpc.add_GRPCInferenceServiceServicer_to_server, AdapterInferenceServicer(service, statistics), server)
    health = add_health_and_reflection(server, [SERVICE_NAME], {SERVICE_NAME: UNSERVED})
    listening = await start_serving(server, listen, "adapter", health, [package.name, SERVICE_NAME])
    try:
        # Before the ready line, which tells the launcher both bindings answer.
        rest = await _start_rest(service, rest_listen, traced=telemetry.provider is not None) if rest_listen else None
        tap = await _start_tap(service, tap_listen, Observers(observers), telemetry) if tap_listen else None
    except (SystemExit, ManifestError):
        await server.stop(None)  # a gRPC server left running is torn down after the loop closes, with a traceback
        await service.close()
        raise
    print(adapter_ready_line(package.name, package.version, listening), flush=True)
    readiness = asyncio.get_running_loop().create_task(
        follow_readiness(service.runtime, health, [package.name, SERVICE_NAME], f"{package.name}:{package.version}",
                         also=[recorder.serving] if recorder is not None else ()))

    async def stop() -> None:
        readiness.cancel()
        if rest is not None:
            await rest.cleanup()
        if tap is not None:
            await tap.stop()
        await service.close()
        await telemetry.close()
    await serve_until_stopped(server, health, on_stop=stop)


async def _start_rest(service: ModelService, listen: str, traced: bool):
    # Imported only when asked for: a model's own environment (adapter-requirements.txt) may lack aiohttp.
    try:
        from meshserve.adapters.rest_listener import start_adapter_rest
    except ImportError as exc:
        raise SystemExit(f"meshserve adapter: --rest-listen needs {exc.name or 'aiohttp'}, which this Python "
                         f"({sys.executable}) lacks; install aiohttp in it or serve gRPC only") from None
    return await start_adapter_rest(service, listen, traced)


async def _start_tap(service: ModelService, listen: str, observers: Observers, telemetry):
    """The side tap of a Triton adapter (adapters/triton/tap.py), feeding the adapter's own observers."""
    from meshserve.adapters.triton.tap import SideTap
    from meshserve.core.settings import get_settings

    tap = SideTap(service.package, observers, traced=telemetry.provider is not None,
                  max_body_bytes=get_settings().triton_tap_max_body_bytes)
    service.runtime.write_endpoint(tap=await tap.start(listen))  # where Envoy's ext_proc cluster points
    return tap


def main(argv: list[str] | None = None) -> int:
    from meshserve.adapters.arguments import add_arguments

    parser = argparse.ArgumentParser(prog="meshserve adapter", description="Serve one model package over gRPC.")
    add_arguments(parser)  # the same as `meshserve adapter`'s
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    return run_server("adapter", serve(args.package, args.listen, rest_listen=getattr(args, "rest_listen", ""),
                                       tap_listen=getattr(args, "tap_listen", "")))


if __name__ == "__main__":
    sys.exit(main())
