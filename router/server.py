"""The router process: the data plane (inference service) and the control plane (control
service) on one port.

    python -m meshserve.router.server --table run/models.json --listen 127.0.0.1:8001 \
        [--rest-listen 127.0.0.1:8000]

With --rest-listen it also serves the Open Inference Protocol over HTTP/REST, answered by the
same servicer through the same interceptors (router/rest/).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

import grpc

from meshserve.console.routes import add_console
from meshserve.core.grpc_server import (
    add_health_and_reflection, create_server, run_server, serve_until_stopped, start_serving)
from meshserve.core.internal_tls import server_ssl_context
from meshserve.core.message_guard import add_guarded
from meshserve.core.mesh_protocol import router_ready_line
from meshserve.core.unserved_methods import UNSERVED
from meshserve.core.observers import Observer, Observers
from meshserve.observability.telemetry import router_telemetry
from meshserve.router.control_plane.control_service import ControlServicer
from meshserve.router.data_plane.authorization import ModelAccess
from meshserve.router.data_plane.forwarding import Forwarder
from meshserve.router.data_plane.inference_service import RouterInferenceServicer
from meshserve.spec.model_table import ModelTable
from meshserve.router.table_reload import TableReload
from meshserve.router.data_plane.triton_extensions import served_extensions
from meshserve.router.rest.http_routes import start_rest
from meshserve.sidecars.records.observer import router_record_observer
from meshserve.v1 import control_pb2, control_pb2_grpc

INFERENCE_SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
CONTROL_SERVICE = control_pb2.DESCRIPTOR.services_by_name["Control"].full_name


async def serve(table_path: str, listen: str, observers: list[Observer] | None = None,
                interceptors: list[grpc.aio.ServerInterceptor] | None = None, rest_listen: str = "") -> None:
    table = ModelTable.read(table_path)
    telemetry = router_telemetry(weights_of=lambda model: control.weights_in_force(model))
    observers = [*telemetry.observers, *(observers or ())]
    recorder = router_record_observer(table.package_of)
    if recorder is not None:
        observers.append(recorder)
    forwarder = Forwarder(table, observers=Observers(observers))
    interceptors = [*telemetry.interceptors, *(interceptors or ())]
    server = create_server(interceptors)
    fronts = frozenset({"grpc", "rest"} if rest_listen else {"grpc"})
    inference = RouterInferenceServicer(forwarder, ModelAccess.from_control(table.control),
                                        extensions=served_extensions(fronts))
    add_guarded(pb_grpc.add_GRPCInferenceServiceServicer_to_server, inference, server)
    control = ControlServicer(table, forwarder.ready)
    add_guarded(control_pb2_grpc.add_ControlServicer_to_server, control, server)
    health = add_health_and_reflection(server, [INFERENCE_SERVICE, CONTROL_SERVICE], {INFERENCE_SERVICE: UNSERVED})
    await start_serving(server, listen, "router", health, [INFERENCE_SERVICE, CONTROL_SERVICE])
    try:
        rest = await start_rest(inference, interceptors, rest_listen, server_ssl_context(),
                                extend=lambda app: add_console(app, control)) if rest_listen else None
    except SystemExit:
        await server.stop(None)  # a gRPC server left running is torn down after the loop closes, with a traceback
        raise
    await control.start_background()
    # Packages `meshserve up` loads while it runs arrive as a rewritten table (router/table_reload.py).
    reload = asyncio.get_running_loop().create_task(TableReload(table_path, table, forwarder, control).run())
    print(router_ready_line(listen), flush=True)

    async def stop() -> None:
        reload.cancel()
        if rest is not None:
            await rest.cleanup()
        await forwarder.close()
        await telemetry.close()
    await serve_until_stopped(server, health, on_stop=stop)


def run(args: argparse.Namespace) -> int:
    return run_server("router", serve(args.table, args.listen, rest_listen=args.rest_listen))


def main(argv: list[str] | None = None) -> int:
    from meshserve.router.arguments import add_arguments

    parser = argparse.ArgumentParser(prog="meshserve router", description="Run the front gRPC router.")
    add_arguments(parser)  # the same as `meshserve router`'s
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
