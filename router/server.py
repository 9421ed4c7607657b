"""The router process: the front inference service and the control service on one port.

    python -m meshserve.router.server --table run/models.json --listen 127.0.0.1:8001
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from grpc_health.v1 import health_pb2
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from meshserve.errors import ManifestError
from meshserve.grpc_server import add_health_and_reflection, create_server, serve_until_stopped
from meshserve.router.control_service import ControlServicer
from meshserve.router.inference_service import RouterInferenceServicer, Upstreams
from meshserve.router.model_table import ModelTable
from meshserve.v1 import control_pb2, control_pb2_grpc

INFERENCE_SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
CONTROL_SERVICE = control_pb2.DESCRIPTOR.services_by_name["Control"].full_name


async def serve(table_path: str, listen: str) -> None:
    table = ModelTable.read(table_path)
    upstreams = Upstreams()
    inference = RouterInferenceServicer(table, upstreams)
    server = create_server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(inference, server)
    control_pb2_grpc.add_ControlServicer_to_server(ControlServicer(table, inference._ready), server)
    health = add_health_and_reflection(server, [INFERENCE_SERVICE, CONTROL_SERVICE])
    if server.add_insecure_port(listen) == 0:
        raise SystemExit(f"meshserve router: cannot listen on {listen} (address in use?)")
    await server.start()
    for name in ("", INFERENCE_SERVICE, CONTROL_SERVICE):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    print(f"meshserve router ready on {listen}", flush=True)
    await serve_until_stopped(server, health, on_stop=upstreams.close)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, help="models table JSON written by `meshserve up`")
    parser.add_argument("--listen", default="127.0.0.1:8001", help="host:port clients connect to")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args.table, args.listen))
    except ManifestError as exc:
        print(f"meshserve router: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meshserve router", description="Run the front gRPC router.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
