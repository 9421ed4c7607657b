"""The router's Open Inference Protocol service: what every client talks to.

For each inference: resolve the model and version, check the request against the
signature, stamp a request id, forward to the adapter (or to Envoy's mesh listener,
which picks the variant) within the client's deadline, and hand back the answer.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

import meshserve
from meshserve.adapters.dataplane import model_config, model_metadata
from meshserve.errors import MeshError, ModelUnavailable, abort
from meshserve.grpc_server import channel_options
from meshserve.router.model_table import ModelTable
from meshserve.settings import get_settings
from meshserve.signature_check import check_request

# Client headers worth carrying to the adapter: ours (x-*) and W3C trace context.
FORWARDED_HEADERS = ("traceparent", "tracestate", "baggage")
READY_TIMEOUT_S = 2.0


class Upstreams:
    """One channel per adapter (or Envoy) address, reused by every request."""

    def __init__(self) -> None:
        self._stubs: dict[str, pb_grpc.GRPCInferenceServiceStub] = {}
        self._channels: list[grpc.aio.Channel] = []

    def stub(self, address: str) -> pb_grpc.GRPCInferenceServiceStub:
        if address not in self._stubs:
            channel = grpc.aio.insecure_channel(address, options=channel_options())
            self._channels.append(channel)
            self._stubs[address] = pb_grpc.GRPCInferenceServiceStub(channel)
        return self._stubs[address]

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._channels))


class RouterInferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, table: ModelTable, upstreams: Upstreams):
        self.table = table
        self.upstreams = upstreams

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        checks = [self._ready(name, "") for name in self.table.models]
        return pb.ServerReadyResponse(ready=all(await asyncio.gather(*checks)))

    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=await self._ready(request.name, request.version))

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name="meshserve", version=meshserve.__version__, extensions=[])

    async def ModelMetadata(self, request, context):
        try:
            model = self.table.model(request.name)
            entry = model.version(request.version)
        except MeshError as exc:
            await abort(context, exc)
        versions = [request.version] if request.version else list(model.versions)
        return model_metadata(entry.package, versions)

    async def ModelConfig(self, request, context):
        try:
            return model_config(self.table.model(request.name).version(request.version).package)
        except MeshError as exc:
            await abort(context, exc)

    async def ModelInfer(self, request, context):
        request_id = request_id_of(context, request)
        try:
            response = await self._forward(request, request_id, context)
        except Exception as exc:
            context.set_trailing_metadata((("x-request-id", request_id),))
            await abort(context, exc)
        context.set_trailing_metadata((("x-request-id", request_id),))
        return response

    async def ModelStreamInfer(self, request_iterator, context):
        async for request in request_iterator:
            request_id = request.id or uuid.uuid4().hex
            try:
                response = await self._forward(request, request_id, context)
                yield pb.ModelStreamInferResponse(infer_response=response)
            except grpc.aio.AbortError:
                raise
            except MeshError as exc:
                yield pb.ModelStreamInferResponse(error_message=exc.message)

    async def _forward(self, request, request_id: str, context) -> pb.ModelInferResponse:
        model = self.table.model(request.model_name)
        entry = model.version(request.model_version)
        check_request(request, entry.package.manifest.signature)
        request.id = request_id
        headers = [("x-request-id", request_id), ("x-meshserve-model", model.name)]
        if request.model_version:
            headers.append(("x-meshserve-version", request.model_version))
        headers += [(k, v) for k, v in (context.invocation_metadata() or ())
                    if (k.startswith("x-") and k not in ("x-request-id", "x-meshserve-model", "x-meshserve-version"))
                    or k in FORWARDED_HEADERS]
        remaining = context.time_remaining()
        timeout = remaining if remaining is not None else get_settings().default_timeout_s
        address = self.table.mesh_address or entry.address
        try:
            return await self.upstreams.stub(address).ModelInfer(request, timeout=timeout, metadata=headers)
        except grpc.aio.AioRpcError as exc:
            raise upstream_error(exc, model.name, request.model_version) from exc

    async def _ready(self, name: str, version: str) -> bool:
        model = self.table.models.get(name)
        if model is None or (version and version not in model.versions):
            return False
        if self.table.mesh_address:
            # Through Envoy, as inferences go: ready means a healthy replica can answer.
            address, request = self.table.mesh_address, pb.ModelReadyRequest(name=name, version=version)
            headers = [("x-meshserve-model", name)] + ([("x-meshserve-version", version)] if version else [])
        else:
            entry = model.version(version)
            address, headers = entry.address, []
            request = pb.ModelReadyRequest(name=name, version=entry.package.version)
        stub = self.upstreams.stub(address)
        for _ in range(2):
            try:
                answer = await stub.ModelReady(request, timeout=READY_TIMEOUT_S, metadata=headers)
                return answer.ready
            except grpc.aio.AioRpcError as exc:
                # Asking again is safe (no model code runs) and reaches another replica when the
                # one asked died with the question on its connection.
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    return False
        return False


class UpstreamError(MeshError):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def upstream_error(exc: grpc.aio.AioRpcError, model: str, version: str) -> MeshError:
    """Keep the adapter's status and message; say what to do when the adapter is gone."""
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        which = f"model '{model}'" + (f" version '{version}'" if version else "")
        return ModelUnavailable(f"{which} is unavailable ({exc.details()}); "
                                "its adapter is down or restarting, retry shortly")
    return UpstreamError(exc.code(), exc.details() or exc.code().name)


def request_id_of(context, request) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and value:
            return value
    return request.id or uuid.uuid4().hex
