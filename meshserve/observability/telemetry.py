"""What a router or adapter process needs to be seen: its observers, its interceptor, its
/metrics endpoint and its trace pipeline, all decided by settings at start.

With tracing off (OTEL_TRACES_EXPORTER unset or none) and no metrics endpoint
(MESHSERVE_METRICS_LISTEN empty), a server gets no observer and no interceptor at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from opentelemetry.sdk.trace import TracerProvider

from meshserve.core.model_package import ModelPackage
from meshserve.core.observers import Observer
from meshserve.core.settings import get_settings
from meshserve.observability.feature_stats import FeatureStatistics
from meshserve.observability.inference_calls import InferenceCallInterceptor
from meshserve.observability.inference_spans import TracingObserver
from meshserve.observability.metrics import QUEUE_DEPTH, MetricsObserver, serve_metrics
from meshserve.observability.tracing import configure_tracing


@dataclass
class Telemetry:
    side: str
    observers: list[Observer] = field(default_factory=list)
    interceptors: list[grpc.aio.ServerInterceptor] = field(default_factory=list)
    provider: TracerProvider | None = None
    feature_statistics: FeatureStatistics | None = None

    def watch_queue(self, model: str, version: str, queued: Callable[[], int]) -> None:
        """Report a micro-batcher's queue as meshserve_queue_depth."""
        if get_settings().metrics_listen:
            QUEUE_DEPTH.labels(model, version).set_function(queued)

    async def close(self) -> None:
        """Send the spans still queued (bounded by the SDK's export timeout)."""
        if self.feature_statistics is not None:
            self.feature_statistics.stop()
        if self.provider is not None:
            await asyncio.to_thread(self.provider.shutdown)


def _telemetry(side: str, tracing_observer: Callable[[], Observer]) -> Telemetry:
    settings = get_settings()
    telemetry = Telemetry(side, provider=configure_tracing(side))
    traced = telemetry.provider is not None
    if traced:
        telemetry.observers.append(tracing_observer())
    if settings.metrics_listen:
        serve_metrics(settings.metrics_listen)
        telemetry.observers.append(MetricsObserver(side))
    if traced or settings.metrics_listen:
        telemetry.interceptors.append(InferenceCallInterceptor(side, traced=traced))
    return telemetry


def adapter_telemetry(package: ModelPackage) -> Telemetry:
    settings = get_settings()
    telemetry = _telemetry("adapter", lambda: TracingObserver("adapter", runtime=package.manifest.runtime,
                                                              stage_spans=settings.trace_stages,
                                                              digest=package.digest))
    if settings.metrics_listen and settings.feature_statistics:
        telemetry.feature_statistics = FeatureStatistics(package, settings.feature_statistics_interval_s).start()
        telemetry.observers.append(telemetry.feature_statistics)
    return telemetry


def router_telemetry(weights_of: Callable[[str], str] | None = None) -> Telemetry:
    """WEIGHTS_OF: model -> the split in force ("1=90,2=10"), for the router's spans."""
    return _telemetry("router", lambda: TracingObserver("router", weights_of=weights_of))
