"""The tracing observer: fills each inference's span from its `InferenceEvent` and ends it.

It runs after the answer has left (an ordinary observer), on the span the interceptor opened
for the call (`call_context`). Attributes, all under `meshserve.`: model, version (the one
that answered), role (primary, canary, shadow), request_id, weights (the split in force for
the model, at the router), batch_size and queue_wait_ms when micro-batched, status (the gRPC
code) and the error message with an ERROR span status.

At the adapter the runtime's work (the Python, R, Java or Triton call) is a child span,
`predict <runtime>`, at its measured time; the other stages (check, decode, queue for
micro-batching, encode) are attributes in milliseconds (`meshserve.decode_ms`, ...), or child
spans too with MESHSERVE_TRACE_STAGES=true. Each span costs more CPU (creating it, then
encoding it for OTLP) than most of these stages take, so four fewer spans per request are a
large part of what tracing costs.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from meshserve.core.observers import InferenceEvent
from meshserve.observability.call_context import current_call_span
from meshserve.observability.tracing import add_finished_span, tracer

# The order stages run in; each child span starts where the one before ended.
STAGES = ("check", "decode", "queue", "predict", "encode")


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class TracingObserver:
    before_answer = False

    def __init__(self, side: str, runtime: str = "", weights_of: Callable[[str], str] | None = None,
                 stage_spans: bool = False, digest: str = ""):
        self.side = side
        self.digest = digest  # the adapter's package digest (its bundle's sha256), as records carry it
        self.stage_spans = stage_spans  # True: every stage gets a child span, not only predict
        self.runtime = runtime  # the adapter's model world; names its predict span
        self.weights_of = weights_of  # the router's: model -> the split in force, e.g. "1=90,2=10"

    def observe(self, event: InferenceEvent) -> None:
        call = current_call_span()
        if call is None or call.taken:
            return
        if call.streaming:
            # One span per message of a stream, inside the stream's span.
            parent = trace.set_span_in_context(call.span)
            span = tracer().start_span("ModelInfer", context=parent, kind=SpanKind.INTERNAL,
                                       start_time=_ns(event.started_at))
            self._fill(span, event)
            span.end(end_time=_ns(event.started_at + event.timings.get("total", 0.0)))
            return
        call.taken = True
        self._fill(call.span, event)
        call.span.end()

    def _fill(self, span: Span, event: InferenceEvent) -> None:
        role = event.call.role
        span.update_name(f"ModelInfer {role}" if role != "primary" else "ModelInfer")
        attributes = {
            "meshserve.model": event.model,
            "meshserve.version": event.version,
            "meshserve.role": role,
            "meshserve.request_id": event.call.request_id,
            "meshserve.status": event.code.name,
            "rpc.grpc.status_code": event.code.value[0],
        }
        if self.digest:
            attributes["meshserve.digest"] = self.digest
        if self.weights_of is not None and event.model:
            weights = self.weights_of(event.model)
            if weights:
                attributes["meshserve.weights"] = weights
        if event.batch_size is not None:
            attributes["meshserve.batch_size"] = event.batch_size
        if "queue" in event.timings:
            attributes["meshserve.queue_wait_ms"] = round(event.timings["queue"] * 1e3, 3)
        span.set_attributes(attributes)
        if event.error:
            span.set_attribute("meshserve.error", event.error)
            span.set_status(Status(StatusCode.ERROR, event.error))
        if self.side == "adapter":
            span.set_attributes({f"meshserve.{stage}_ms": round(event.timings[stage] * 1e3, 3)
                                 for stage in STAGES if stage in event.timings})
            self._stage_spans(span, event)

    def _stage_spans(self, parent: Span, event: InferenceEvent) -> None:
        at = event.started_at
        for stage in STAGES:
            seconds = event.timings.get(stage)
            if seconds is None:
                continue
            if stage != "predict" and not self.stage_spans:
                at += seconds
                continue
            if stage == "predict":
                add_finished_span(f"predict {self.runtime}" if self.runtime else stage, parent, _ns(at),
                                  _ns(at + seconds), {"meshserve.runtime": self.runtime},
                                  error=event.error if event.error and event.code.name == "INTERNAL" else "")
            else:
                add_finished_span(stage, parent, _ns(at), _ns(at + seconds), {})
            at += seconds
