"""A small closed-loop gRPC load generator: N concurrent callers for a fixed time.

Measures latency (median, p99) and throughput of ModelInfer against any Open Inference
Protocol server, so every benchmark compares targets with the same client.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

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


async def closed_loop(label: str, call: Callable[[], Awaitable[bool]], concurrency: int, seconds: float,
                      warmup_s: float = 1.0) -> Result:
    """CONCURRENCY callers, each awaiting CALL again as soon as it returns, for SECONDS after a
    warm-up. CALL returns whether the answer was right; a wrong answer or an error counts as an error."""
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = time.perf_counter() + warmup_s + seconds

    async def caller() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                ok = await call()
            except (grpc.aio.AioRpcError, OSError):
                ok = False
            if not ok:
                errors += 1
            elif measuring:
                latencies.append((time.perf_counter() - started) * 1000)

    tasks = [asyncio.create_task(caller()) for _ in range(concurrency)]
    await asyncio.sleep(warmup_s)
    measuring, began = True, time.perf_counter()
    await asyncio.gather(*tasks)
    return Result(label, concurrency, len(latencies), errors, time.perf_counter() - began, latencies)


async def measure(label: str, address: str, request, concurrency: int, seconds: float,
                  warmup_s: float = 1.0, metadata=None) -> Result:
    """ModelInfer against an Open Inference Protocol server, in a closed loop."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        async def call() -> bool:
            await stub.ModelInfer(request, timeout=30, metadata=metadata)
            return True

        return await closed_loop(label, call, concurrency, seconds, warmup_s)


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


def merge_results(total: Result | None, part: Result) -> Result:
    """Two measurements of one target as one: the slices of a run in rotating order."""
    if total is None:
        return part
    return Result(part.label, part.concurrency, total.requests + part.requests, total.errors + part.errors,
                  total.seconds + part.seconds, total.latencies_ms + part.latencies_ms)


CpuTally = dict[tuple[str, int], tuple[dict[str, float], int]]


async def rotating_slices(targets: dict[str, Any], request_of: Callable[[str], Any], concurrencies: tuple[int, ...],
                          seconds: float, rounds: int) -> tuple[dict[tuple[str, int], Result], CpuTally]:
    """Each target (LABEL -> an object with .address and .cpu, a process_cpu.PartsCpu) at each
    concurrency for SECONDS, in ROUNDS short slices whose order rotates each round, so a burst of
    load from elsewhere on a shared machine spreads over every target instead of landing on one.

    Returns the results by (label, concurrency), and the CPU seconds by process role with the
    requests they served, by (label, concurrency). Targets must be warm: a slice has no warm-up,
    which would count CPU but no requests.
    """
    results: dict[tuple[str, int], Result] = {}
    cpu: CpuTally = {}
    for round_number in range(rounds):
        order = list(targets)
        order = order[round_number % len(order):] + order[:round_number % len(order)]
        for concurrency in concurrencies:
            for label in order:
                print(f"round {round_number + 1}/{rounds}: {label} at concurrency {concurrency}", flush=True)
                target = targets[label]
                target.cpu.mark()
                part = await measure(label, target.address, request_of(label), concurrency, seconds / rounds,
                                     warmup_s=0)
                used = target.cpu.used()
                key = (label, concurrency)
                results[key] = merge_results(results.get(key), part)
                before, requests = cpu.get(key, ({}, 0))
                cpu[key] = ({p: before.get(p, 0.0) + used.get(p, 0.0) for p in {*before, *used}},
                            requests + part.requests + part.errors)
    return results, cpu
