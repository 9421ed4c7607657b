"""ModelStatistics for the whole mesh: every replica's adapter asked, summed per version.

Each adapter keeps its own model's statistics off the request path (adapters/statistics.py);
the router asks every replica directly (not through Envoy, which would pick one) only when a
client asks, and adds them up. A replica that does not answer (restarting) is left out and
logged, since the statistics message has no place to say so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc
from tritonclient.grpc import service_pb2 as pb

from meshserve.router.data_plane.upstreams import Upstreams
from meshserve.spec.model_table import ModelTable

log = logging.getLogger("meshserve.router")
ASK_TIMEOUT_S = 2.0
DURATIONS = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


def merge(into: pb.ModelStatistics, other: pb.ModelStatistics) -> None:
    """Add OTHER (another replica of the same version) into INTO."""
    into.last_inference = max(into.last_inference, other.last_inference)
    into.inference_count += other.inference_count
    into.execution_count += other.execution_count
    for name in DURATIONS:
        mine, theirs = getattr(into.inference_stats, name), getattr(other.inference_stats, name)
        mine.count += theirs.count
        mine.ns += theirs.ns


async def mesh_statistics(table: ModelTable, upstreams: Upstreams, name: str, version: str,
                          visible: Callable[[str], bool] = lambda model: True) -> pb.ModelStatisticsResponse:
    """Statistics of model NAME (every VISIBLE model when empty) at VERSION (all its versions when
    empty); raises NOT_FOUND for a model or version not served."""
    if name:
        model = table.model(name)
        if version:
            model.version(version)  # NOT_FOUND naming the versions served
        entries = [(model.name, v, e) for v, e in model.versions.items() if version in ("", v)]
    else:
        entries = [(m.name, v, e) for m in table.models.values() if visible(m.name) for v, e in m.versions.items()]

    async def version_statistics(model: str, version: str, replicas: list[str]) -> pb.ModelStatistics:
        request = pb.ModelStatisticsRequest(name=model, version=version)
        answers = await asyncio.gather(*(upstreams.stub(a).ModelStatistics(request, timeout=ASK_TIMEOUT_S)
                                         for a in replicas), return_exceptions=True)
        total = pb.ModelStatistics(name=model, version=version)
        for address, answer in zip(replicas, answers):
            if isinstance(answer, grpc.aio.AioRpcError):
                log.warning("statistics of %s:%s leave out the replica at %s (%s)", model, version, address,
                            answer.code().name)
                continue
            if isinstance(answer, BaseException):
                raise answer
            for stats in answer.model_stats:
                merge(total, stats)
        return total

    stats = await asyncio.gather(*(version_statistics(m, v, e.replicas) for m, v, e in entries))
    return pb.ModelStatisticsResponse(model_stats=stats)
