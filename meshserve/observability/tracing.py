"""The OpenTelemetry trace pipeline of one process, configured by the standard OTEL_* variables.

OTEL_TRACES_EXPORTER picks the exporter (otlp, console, none; default none: no tracing, and
nothing else changes). The SDK itself reads the rest: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT,
OTEL_TRACES_SAMPLER[_ARG], OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_* for the batch processor.

Spans leave through the SDK's BatchSpanProcessor: ending a span only appends it to a
queue, and a background thread exports batches, so a slow or unreachable receiver never
delays an answer. What cannot be exported is dropped and counted
(`meshserve_spans_dropped_total`): spans that found the queue full, and batches the exporter
gave up on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter, SpanExportResult

from meshserve.core.settings import get_tracing_settings
from meshserve.observability.metrics import SPANS_DROPPED, SPANS_EXPORTED

log = logging.getLogger("meshserve.tracing")

TRACER_NAME = "meshserve"


class CountingExporter(SpanExporter):
    """An exporter that counts what it delivered and what it had to give up."""

    def __init__(self, inner: SpanExporter, on_taken=None):
        self.inner = inner
        self._on_taken = on_taken

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._on_taken is not None:
            self._on_taken(len(spans))
        try:
            result = self.inner.export(spans)
        except Exception:  # an exporter must not take the worker thread down with it
            log.exception("span export failed")
            result = SpanExportResult.FAILURE
        if result == SpanExportResult.SUCCESS:
            SPANS_EXPORTED.inc(len(spans))
        else:
            SPANS_DROPPED.labels("export_failed").inc(len(spans))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountedBatchProcessor(SpanProcessor):
    """The SDK's BatchSpanProcessor, plus a count of spans that found its queue full.

    The processor's queue drops its oldest span when a new one arrives at the limit; it
    tells no one, so this keeps its own tally of spans queued and not yet taken for export.
    """

    def __init__(self, exporter: SpanExporter):
        self._lock = threading.Lock()
        self._queued = 0
        self._batch = BatchSpanProcessor(CountingExporter(exporter, on_taken=self._taken))
        self._limit = self._batch._batch_processor._max_queue_size if hasattr(self._batch, "_batch_processor") \
            else 2048

    def _taken(self, count: int) -> None:
        with self._lock:
            self._queued = max(0, self._queued - count)

    def on_start(self, span, parent_context=None) -> None:
        self._batch.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        with self._lock:
            if self._queued >= self._limit:
                SPANS_DROPPED.labels("queue_full").inc()
            else:
                self._queued += 1
        self._batch.on_end(span)

    def shutdown(self) -> None:
        self._batch.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._batch.force_flush(timeout_millis)


def _exporter(name: str) -> SpanExporter:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        settings = get_tracing_settings()
        endpoint = settings.traces_endpoint
        # A plain http:// endpoint means no TLS, as the OTLP specification reads it.
        return OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    if name == "console":
        return ConsoleSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER={name!r} is not supported; use otlp, console or none")


def configure_tracing(part: str) -> TracerProvider | None:
    """Install the process's tracer provider when OTEL_TRACES_EXPORTER asks for one; None otherwise.

    PART names this process within the mesh (router, adapter); the service name is
    OTEL_SERVICE_NAME with it appended, so Jaeger lists meshserve-router, meshserve-adapter, ...
    """
    settings = get_tracing_settings()
    exporters = settings.exporters
    if not exporters:
        return None
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES; our service name wins over its service.name.
    resource = Resource.create({SERVICE_NAME: f"{settings.service_name}-{part}"})
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER[_ARG]
    for name in exporters:
        provider.add_span_processor(CountedBatchProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    global _tracer
    _tracer = None  # made again from this provider
    return provider


_tracer: trace.Tracer | None = None


def tracer() -> trace.Tracer:
    """The process's tracer, made once: get_tracer builds a new one each call (~90 us)."""
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer(TRACER_NAME)
    return _tracer
