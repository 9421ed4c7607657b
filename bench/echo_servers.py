"""The two smallest Open Inference Protocol servers, the floor the mesh's processes are measured
against (bench_echo_chain.py):

* echo: ModelInfer answers the request's input tensors as its outputs, nothing else;
* forward: ModelInfer sends the same request to the next hop and returns its answer, as the
  router does, with the one header Envoy's mesh listener routes on.

Plain grpc.aio with tritonclient's generated servicer, plus grpc.health.v1 because Envoy health
checks the hosts of a variant's cluster. Each runs as a process of its own:

    .venv/bin/python bench/echo_servers.py echo --listen 127.0.0.1:9001
    .venv/bin/python bench/echo_servers.py forward --listen 127.0.0.1:9002 --next 127.0.0.1:9003
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

MODEL_HEADER = "x-meshserve-model"  # meshserve.core.mesh_protocol's, kept literal to import nothing of meshserve
READY = "echo server listening on"


class Echo(pb_grpc.GRPCInferenceServiceServicer):
    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:
        response = pb.ModelInferResponse()
        for tensor in request.inputs:
            output = response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
            if tensor.HasField("contents"):
                output.contents.CopyFrom(tensor.contents)
        response.raw_output_contents.extend(request.raw_input_contents)
        return response


class Forward(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, next_hop: str):
        self.next_hop = pb_grpc.GRPCInferenceServiceStub(grpc.aio.insecure_channel(next_hop))

    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:
        return await self.next_hop.ModelInfer(request, metadata=((MODEL_HEADER, request.model_name),))


async def serve(kind: str, listen: str, next_hop: str | None = None) -> None:
    server = grpc.aio.server()
    servicer = Echo() if kind == "echo" else Forward(next_hop)  # a channel belongs to the running loop
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    if server.add_insecure_port(listen) == 0:
        raise SystemExit(f"cannot listen on {listen}")
    await server.start()
    await checks.set("", health_pb2.HealthCheckResponse.SERVING)
    print(f"{READY} {listen}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=("echo", "forward"))
    parser.add_argument("--listen", required=True, help="host:port to serve on")
    parser.add_argument("--next", help="forward only: host:port of the next hop")
    args = parser.parse_args()
    if args.kind == "forward" and not args.next:
        parser.error("forward needs --next")
    asyncio.run(serve(args.kind, args.listen, args.next))


if __name__ == "__main__":
    main()
