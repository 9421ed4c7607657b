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
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode

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


class _HashedResource(Resource):
    """The process's resource, hashed once: the OTLP encoder groups spans by resource, which
    hashes it (as JSON) for every span it sends, a sixth of the encoding's cost."""

    def __init__(self, resource: Resource):
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


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
    resource = _HashedResource(Resource.create({SERVICE_NAME: f"{settings.service_name}-{part}"}))
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER[_ARG]
    processors = [CountedBatchProcessor(_exporter(name)) for name in exporters]
    for processor in processors:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    global _tracer, _finished
    _tracer = None  # made again from this provider
    _finished = (provider, processors)
    return provider


_tracer: trace.Tracer | None = None


def tracer() -> trace.Tracer:
    """The process's tracer, made once: get_tracer builds a new one each call (~90 us)."""
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer(TRACER_NAME)
    return _tracer


_finished: tuple[TracerProvider, list[SpanProcessor]] | None = None
_SCOPE = InstrumentationScope(TRACER_NAME)


def add_finished_span(name: str, parent: Span, start_ns: int, end_ns: int, attributes: dict,
                      error: str = "") -> None:
    """A child span of PARENT for work timed elsewhere (the runtime's call), made finished.

    It goes straight to the span processors as the SDK's ReadableSpan: a span opened and
    ended through the tracer costs six times as much (sampling, locks, attribute checks),
    for a span whose every field is known when it is made. It is sampled as its parent is.
    """
    parent_context = parent.get_span_context()
    if _finished is None or not parent_context.trace_flags.sampled:
        return
    provider, processors = _finished
    context = SpanContext(parent_context.trace_id, provider.id_generator.generate_span_id(), is_remote=False,
                          trace_flags=parent_context.trace_flags, trace_state=parent_context.trace_state)
    span = ReadableSpan(name=name, context=context, parent=parent_context, resource=provider.resource,
                        attributes=attributes, kind=SpanKind.INTERNAL, start_time=start_ns, end_time=end_ns,
                        status=Status(StatusCode.ERROR, error) if error else Status(StatusCode.UNSET),
                        instrumentation_scope=_SCOPE)
    for processor in processors:
        processor.on_end(span)
