"""The span of the inference call being served, as the interceptor opened it.

The interceptor opens the call's server span before the servicer runs and keeps it here
(a context variable, so every task of that call sees it, including the observers, which the
event loop runs with a copy of the call's context). The tracing observer fills the span
from the finished `InferenceEvent` and ends it; the interceptor ends any span no observer
took (a call refused before it became an inference, such as an unknown model).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode


@dataclass
class CallSpan:
    span: Span
    streaming: bool = False  # a stream's span holds one child span per inference
    taken: bool = False  # an observer has filled and ended it
    error: str = field(default="", repr=False)

    @property
    def trace_id(self) -> str:
        """The trace id, only when the trace is sampled: an unsampled one cannot be found anywhere."""
        context = self.span.get_span_context()
        return trace.format_trace_id(context.trace_id) if context.is_valid and context.trace_flags.sampled else ""

    def end_unless_taken(self) -> None:
        if self.taken:
            return
        if self.error:
            self.span.set_status(Status(StatusCode.ERROR, self.error))
        self.span.end()


_current: contextvars.ContextVar[CallSpan | None] = contextvars.ContextVar("meshserve_call_span", default=None)


def current_call_span() -> CallSpan | None:
    return _current.get()


def current_trace_id() -> str:
    call = _current.get()
    return call.trace_id if call is not None else ""


def set_call_span(call: CallSpan | None) -> contextvars.Token:
    return _current.set(call)


def reset_call_span(token: contextvars.Token) -> None:
    _current.reset(token)


def trace_headers() -> dict[str, str]:
    """W3C trace context of the call being served, for a runtime that calls another server
    (Triton): with Triton's OpenTelemetry trace mode on, its spans join the inference's trace."""
    if _current.get() is None:
        return {}
    from opentelemetry import propagate

    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers
