"""A client that keeps many Open Inference Protocol requests in flight, for traffic tests."""

from __future__ import annotations

import asyncio
import math
import uuid

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

Z_999 = 3.2905  # two-sided 99.9% normal quantile


def within_binomial_interval(observed: int, n: int, p: float) -> bool:
    """OBSERVED successes of N lie within the 99.9% interval of a binomial with probability P."""
    return abs(observed - n * p) <= Z_999 * math.sqrt(n * p * (1 - p)) + 1


def versions_of(results) -> dict[str, int]:
    """How many responses each variant gave; fails on the first failed request."""
    counts: dict[str, int] = {}
    for result in results:
        assert isinstance(result, pb.ModelInferResponse), f"request failed: {result}"
        counts[result.model_version] = counts.get(result.model_version, 0) + 1
    return counts


class TrafficClient:
    """grpc.aio client on its own event loop, usable from synchronous tests."""

    def __init__(self, address: str, routing_key_header: str = "x-user-id", as_router: bool = False):
        self.routing_key_header = routing_key_header
        # as_router: talk to Envoy's mesh listener the way the router does (model in a header).
        self.as_router = as_router
        self.loop = asyncio.new_event_loop()

        async def connect():
            # A grpc.aio channel belongs to the loop it is created on.
            self.channel = grpc.aio.insecure_channel(address)
            self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self.loop.run_until_complete(connect())

    def close(self) -> None:
        self.loop.run_until_complete(self.channel.close())
        self.loop.close()

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    async def infer(self, model: str, version: str | None = None, key: str | None = None,
                    timeout: float = 10.0) -> pb.ModelInferResponse:
        metadata = []
        if self.as_router:
            metadata.append(("x-meshserve-model", model))
            metadata.append(("x-request-id", uuid.uuid4().hex))
            if version:
                metadata.append(("x-meshserve-version", version))
        if key:
            metadata.append((self.routing_key_header, key))
        request = pb.ModelInferRequest(model_name=model, model_version=version or "")
        tensor = request.inputs.add(name="x", datatype="FP32", shape=[1, 1])
        tensor.contents.fp32_contents.append(1.5)
        return await self.stub.ModelInfer(request, metadata=metadata, timeout=timeout)

    def send(self, count: int, concurrency: int = 16, **kwargs) -> list:
        """COUNT requests with CONCURRENCY in flight; each result is a response or the RpcError."""
        async def run():
            results: list = [None] * count
            indexes = iter(range(count))

            async def worker():
                for i in indexes:
                    try:
                        results[i] = await self.infer(**kwargs)
                    except grpc.RpcError as exc:
                        results[i] = exc
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return results
        return self.run(run())

    def sticky_assignment(self, model: str, keys: list[str], sends: int, concurrency: int = 16) -> dict[str, set[str]]:
        """Send each key SENDS times; which variants answered each key."""
        async def run():
            assignment: dict[str, set[str]] = {k: set() for k in keys}
            semaphore = asyncio.Semaphore(concurrency)

            async def one(key):
                async with semaphore:
                    response = await self.infer(model, key=key)
                    assignment[key].add(response.model_version)
            await asyncio.gather(*(one(k) for _ in range(sends) for k in keys))
            return assignment
        return self.run(run())
