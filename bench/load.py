"""A small closed-loop gRPC load generator: N concurrent callers for a fixed time.

Measures latency (median, p99) and throughput of ModelInfer against any Open Inference
Protocol server, so every benchmark compares targets with the same client.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import grpc
from tritonclient.grpc import service_pb2_grpc as pb_grpc


@dataclass
class Result:
    label: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


async def measure(label: str, address: str, request, concurrency: int, seconds: float,
                  warmup_s: float = 1.0, metadata=None) -> Result:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        latencies: list[float] = []
        errors = 0
        measuring = False
        stop_at = time.perf_counter() + warmup_s + seconds

        async def caller() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    await stub.ModelInfer(request, timeout=30, metadata=metadata)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                if measuring:
                    latencies.append((time.perf_counter() - started) * 1000)

        tasks = [asyncio.create_task(caller()) for _ in range(concurrency)]
        await asyncio.sleep(warmup_s)
        measuring, began = True, time.perf_counter()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    return Result(label, concurrency, len(latencies), errors, elapsed, latencies)


def table(results: list[Result], baseline_label: str) -> str:
    """Rows of figures plus each target's ratio to the baseline at the same concurrency."""
    base = {r.concurrency: r for r in results if r.label == baseline_label}
    lines = [f"{'target':<28}{'conc':>5}{'median ms':>11}{'p99 ms':>9}{'req/s':>9}{'errors':>7}"
             f"{'median x':>10}{'req/s x':>9}"]
    for r in results:
        b = base.get(r.concurrency)
        lines.append(f"{r.label:<28}{r.concurrency:>5}{r.median_ms:>11.3f}{r.p99_ms:>9.3f}{r.throughput:>9.0f}"
                     f"{r.errors:>7}{r.median_ms / b.median_ms:>10.2f}{r.throughput / b.throughput:>9.2f}")
    return "\n".join(lines)
