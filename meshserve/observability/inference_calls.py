"""The gRPC server interceptor every meshserve server runs for its inference calls.

For ModelInfer and ModelStreamInfer only (health, readiness, metadata and metrics calls make
no spans), it:
- counts the call in flight (`meshserve_in_flight_requests`);
- when tracing is on, opens the call's server span, continuing the W3C `traceparent` the
  caller sent (Envoy's span, or the client's), and makes it the current span;
- shows the servicer the call's trace context as this span, so whatever the servicer
  forwards (the router's call through Envoy to an adapter) continues the trace from here;
- returns the trace id in trailing metadata (`x-meshserve-trace-id`) when the trace is sampled,
  so a user can find it.

The span is ended after the answer has left, by the tracing observer or, for a call that
never became an inference, by this interceptor (scheduled on the event loop after the
observers, so neither delays the answer).
"""

from __future__ import annotations

import asyncio

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from meshserve.core.mesh_protocol import TRACE_CONTEXT_HEADERS, TRACE_ID_HEADER
from meshserve.observability.call_context import CallSpan, reset_call_span, set_call_span
from meshserve.observability.metrics import IN_FLIGHT
from meshserve.observability.tracing import tracer

SERVICE = "/inference.GRPCInferenceService/"
UNARY, STREAM = SERVICE + "ModelInfer", SERVICE + "ModelStreamInfer"


MAX_MODEL_LABELS = 64


class _TracedContext:
    """The servicer's view of a traced call: the caller's metadata with this span as the trace
    context, and trailing metadata that always carries the trace id."""

    def __init__(self, context: grpc.aio.ServicerContext, metadata: tuple, trace_id: str):
        self._context = context
        self._metadata = metadata
        self._trailer = ((TRACE_ID_HEADER, trace_id),) if trace_id else ()
        if trace_id:
            context.set_trailing_metadata(self._trailer)

    def invocation_metadata(self):
        return self._metadata

    def set_trailing_metadata(self, metadata) -> None:
        self._context.set_trailing_metadata((*tuple(metadata), *self._trailer))

    def __getattr__(self, name):
        return getattr(self._context, name)


class InferenceCallInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, side: str, traced: bool):
        self.side = side
        self.traced = traced
        self._labels: set[str] = set()
        self._wrapped: dict[str, tuple] = {}  # method -> (the servicer's handler, it wrapped), made once

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method not in (UNARY, STREAM):
            return handler
        made = self._wrapped.get(method)
        if made is None or made[0] is not handler:
            made = self._wrapped[method] = (handler, self._wrap(method, handler))
        return made[1]

    def _wrap(self, method: str, handler):
        if method == UNARY and handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary), request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if method == STREAM and handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._stream(handler.stream_stream), request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return handler

    def _open(self, context: grpc.aio.ServicerContext, name: str, streaming: bool):
        """The call's span, the servicer's view of the call, and what to undo when it ends."""
        metadata = tuple(context.invocation_metadata() or ())
        carrier = {k: v for k, v in metadata if k in TRACE_CONTEXT_HEADERS and isinstance(v, str)}
        parent = propagate.extract(carrier)
        span = tracer().start_span(name, context=parent, kind=SpanKind.SERVER,
                                   attributes={"rpc.system": "grpc", "rpc.service": "inference.GRPCInferenceService",
                                               "rpc.method": name, "meshserve.side": self.side})
        call = CallSpan(span, streaming=streaming)
        tokens = (otel_context.attach(trace.set_span_in_context(span)), set_call_span(call))
        injected: dict[str, str] = {}
        propagate.inject(injected)
        forwarded = (*((k, v) for k, v in metadata if k not in TRACE_CONTEXT_HEADERS), *injected.items())
        return call, _TracedContext(context, forwarded, call.trace_id), tokens

    @staticmethod
    def _close(call: CallSpan, tokens, failure: BaseException | None) -> None:
        reset_call_span(tokens[1])
        otel_context.detach(tokens[0])
        if failure is not None and not isinstance(failure, asyncio.CancelledError):
            call.error = str(failure) or type(failure).__name__
        # After the observers this call scheduled, so the tracing observer gets to end it first.
        asyncio.get_running_loop().call_soon(call.end_unless_taken)

    def _model_label(self, request) -> str:
        """The model label of the in-flight gauge. Clients choose model names (an unparsable message
        has none), so only the first MAX_MODEL_LABELS names get their own series: a client sending
        made-up names cannot grow the metrics without bound."""
        name = getattr(request, "model_name", "")
        if not isinstance(name, str) or len(name) > 128:
            return "(other)"
        if name not in self._labels:
            if len(self._labels) >= MAX_MODEL_LABELS:
                return "(other)"
            self._labels.add(name)
        return name

    def _unary(self, behavior):
        async def serve(request, context):
            gauge = IN_FLIGHT.labels(self.side, self._model_label(request))
            gauge.inc()
            try:
                if not self.traced:
                    return await behavior(request, context)
                call, traced_context, tokens = self._open(context, "ModelInfer", streaming=False)
                failure = None
                try:
                    return await behavior(request, traced_context)
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    self._close(call, tokens, failure)
            finally:
                gauge.dec()
        return serve

    def _stream(self, behavior):
        async def serve(request_iterator, context):
            gauge = IN_FLIGHT.labels(self.side, "")
            gauge.inc()
            try:
                if not self.traced:
                    async for response in behavior(request_iterator, context):
                        yield response
                    return
                call, traced_context, tokens = self._open(context, "ModelStreamInfer", streaming=True)
                failure = None
                try:
                    async for response in behavior(request_iterator, traced_context):
                        yield response
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    self._close(call, tokens, failure)
            finally:
                gauge.dec()
        return serve
