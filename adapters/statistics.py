"""Per-model inference statistics in Triton's terms, for the ModelStatistics RPC.

An observer like the others (it runs after each answer is on its way): it adds each inference's
stage times to running totals. The adapter answers ModelStatistics from them, and the router
sums every replica's answer per version. Triton's stages map onto the adapter's: queue is the
micro-batch wait, compute_input the check and decode, compute_infer the predict call,
compute_output the encode; success and fail count whole requests with their total time.
"""

from __future__ import annotations

import time

import grpc
from tritonclient.grpc import service_pb2 as pb

from meshserve.core.observers import InferenceEvent

STAGES = {"queue": ("queue",), "compute_input": ("check", "decode"), "compute_infer": ("predict",),
          "compute_output": ("encode",)}


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class InferenceStatistics:
    """Running totals for one model version, fed by its adapter's observers."""

    before_answer = False

    def __init__(self, model: str, version: str):
        self.model, self.version = model, version
        self.last_inference_ms = 0
        self.inference_count = 0  # rows answered, as Triton counts each inference of a batch
        self._executions = 0.0  # predict calls: a micro-batch of k requests adds 1/k per request
        self._totals = {name: [0, 0] for name in ("success", "fail", *STAGES)}  # count, ns

    def observe(self, event: InferenceEvent) -> None:
        self.last_inference_ms = int(time.time() * 1000)
        kind = "success" if event.code == grpc.StatusCode.OK else "fail"
        self._add(kind, event.timings.get("total", 0.0))
        if kind == "fail":
            return
        rows = next(iter(event.inputs.values())).shape[0] if event.inputs else 1
        self.inference_count += int(rows) if rows else 1
        self._executions += 1 / (event.batch_size or 1)
        # Every stage of every answered request is counted, a zero wait too, as Triton does:
        # perf_analyzer finds the version it measured by its growing queue count.
        for stage, parts in STAGES.items():
            self._add(stage, sum(event.timings.get(part, 0.0) for part in parts))

    def _add(self, name: str, seconds: float) -> None:
        total = self._totals[name]
        total[0] += 1
        total[1] += _ns(seconds)

    def snapshot(self) -> pb.ModelStatistics:
        stats = pb.ModelStatistics(name=self.model, version=self.version, last_inference=self.last_inference_ms,
                                   inference_count=self.inference_count, execution_count=round(self._executions))
        for name, (count, ns) in self._totals.items():
            getattr(stats.inference_stats, name).MergeFrom(pb.StatisticDuration(count=count, ns=ns))
        return stats

