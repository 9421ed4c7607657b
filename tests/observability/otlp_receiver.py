"""A real OTLP/gRPC trace receiver for tests, on opentelemetry-proto's TraceService.

Envoy, the router and the adapters export to it exactly as they would to Jaeger or an
OpenTelemetry Collector; the test reads back what arrived as plain `ReceivedSpan`s.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as ts_grpc


def _value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


@dataclass
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict = field(default_factory=dict)
    status_code: int = 0
    status_message: str = ""

    def __repr__(self) -> str:
        return f"<{self.service} {self.name!r} {self.span_id} <- {self.parent_id}>"


class OtlpReceiver(ts_grpc.TraceServiceServicer):
    def __init__(self):
        self.spans: list[ReceivedSpan] = []
        self._changed = threading.Condition()
        self.server = grpc.server(ThreadPoolExecutor(4))
        ts_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def Export(self, request, context):
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(ReceivedSpan(
                        service=resource.get("service.name", ""), name=span.name, trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(), parent_id=span.parent_span_id.hex(), kind=span.kind,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        status_code=span.status.code, status_message=span.status.message))
        with self._changed:
            self.spans.extend(received)
            self._changed.notify_all()
        return ts.ExportTraceServiceResponse()

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._changed:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(self, predicate, timeout: float = 15.0) -> list[ReceivedSpan]:
        """Wait until PREDICATE(all spans so far) is true; return the spans; fail with them otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.spans):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"spans never satisfied the condition within {timeout} s: {self.spans}")
                self._changed.wait(remaining)
            return list(self.spans)

    def stop(self) -> None:
        self.server.stop(0)
