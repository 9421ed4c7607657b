"""The side tap: the Triton adapter's records, metrics, statistics and spans for requests it never sees.

On the one-hop path Envoy sends a client's ModelInfer straight to Triton's gRPC port (staging.py
makes Triton answer the mesh's model name and version). Envoy's `ext_proc` HTTP filter, in
observability mode with STREAMED bodies, sends this server a copy of each exchange: request
headers, the request body (one gRPC frame: a 5-byte header, then a ModelInferRequest), response
headers, the response body (a ModelInferResponse frame) and trailers (grpc-status, grpc-message).
The tap turns each exchange into the same `InferenceEvent` the adapter's own path makes and hands
it to the same observers (prediction records, metrics, feature statistics, ModelStatistics,
spans), so a request recorded through the tap looks like one the adapter answered itself.

Envoy never waits for the tap (observability mode): the tap answers nothing and changes nothing.
To keep up, a stream only keeps what arrives (bytes and a few headers); decoding and the observers
run after the exchange ends, in one worker fed by a bounded queue, off the stream's path. An
exchange is over at the response's trailers (or a trailers-only response); a stream that ends
before that (reset, client gone) is recorded with the status seen so far. What the tap cannot
record in full is counted, never dropped silently: `meshserve_tap_incomplete_records_total` (a
record without its tensors: a body over MESHSERVE_TRITON_TAP_MAX_BODY_BYTES, a compressed or
unparsable frame) and `meshserve_tap_lost_records_total` (no record: the queue was full, the
stream carried nothing, the request named another model, or the record failed).
Only ModelInfer is recorded; other calls through the same filter (metadata, health) are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from prometheus_client import Counter
from tritonclient.grpc import service_pb2 as pb

from meshserve.adapters.tensor_codec import decode_tensor
from meshserve.core.errors import InvalidInput, ManifestError
from meshserve.core.mesh_protocol import (
    MODEL_HEADER, PRIMARY, REQUEST_ID_HEADER, ROLE_HEADER, ROLES, TRACE_CONTEXT_HEADERS, VARIANT_HEADER,
    VERSION_HEADER, CallInfo, request_id_of, trace_id_of)
from meshserve.core.model_package import ModelPackage
from meshserve.core.observers import InferenceEvent, Observers
from meshserve.core.signature_check import one_value_per_row

log = logging.getLogger("meshserve.triton.tap")

SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
MODEL_INFER_PATH = "/inference.GRPCInferenceService/ModelInfer"
QUEUE_LIMIT = 10_000  # exchanges waiting for the worker; past it they are counted as lost
_REQUEST_KEEP = frozenset((":path", REQUEST_ID_HEADER, MODEL_HEADER, VERSION_HEADER, ROLE_HEADER,
                           *TRACE_CONTEXT_HEADERS))
_RESPONSE_KEEP = frozenset((":status", VARIANT_HEADER, "grpc-status", "grpc-message"))

INCOMPLETE = Counter("meshserve_tap_incomplete_records", "Requests the side tap recorded without their inputs or "
                     "outputs (body too large to keep, compressed or unparsable frame), by reason.",
                     ("model", "version", "reason"))
LOST = Counter("meshserve_tap_lost_records", "Requests the side tap could not record at all (queue full, empty or "
               "unreadable stream, another model's request, a failed record), by reason.",
               ("model", "version", "reason"))


def ext_proc_stubs():
    """The ext_proc messages the tap reads (protos/meshserve/v1/ext_proc_observed.proto)."""
    from meshserve.v1 import ext_proc_observed_pb2

    return ext_proc_observed_pb2


class TapRefused(ManifestError):
    """--tap-listen given for a model that Envoy cannot send straight to its server."""


def check_tap_runtime(package: ModelPackage) -> None:
    if package.manifest.runtime != "triton":
        raise TapRefused(str(package.manifest_path), "runtime", f"--tap-listen observes requests Envoy sends straight "
                         f"to Triton, and this package's runtime is {package.manifest.runtime}",
                         "drop --tap-listen: the adapter sees every request of this model itself")


def _headers(header_map, keep: frozenset[str], into: dict[str, str]) -> None:
    for header in header_map.headers:
        if header.key in keep:
            into[header.key] = header.raw_value.decode("latin-1") if header.raw_value else header.value


@dataclass
class Exchange:
    """One request and its answer as the tap saw them, kept raw until the exchange is over."""

    limit: int
    started_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)  # trailers too
    request_body: list[bytes] = field(default_factory=list)
    response_body: list[bytes] = field(default_factory=list)
    kept: int = 0
    overflow: str = ""  # which body was larger than the tap keeps
    request_sent: float | None = None
    answer_started: float | None = None
    ended: float | None = None
    ignored: bool = False  # not a ModelInfer

    def take(self, message) -> bool:
        """Keep what MESSAGE carries; True once the answer is complete."""
        kind = message.WhichOneof("request")
        if kind == "request_headers":
            _headers(message.request_headers.headers, _REQUEST_KEEP, self.request_headers)
            self.ignored = self.request_headers.get(":path") != MODEL_INFER_PATH
            if message.request_headers.end_of_stream:
                self.request_sent = time.perf_counter()
        elif kind == "request_body":
            self._keep(self.request_body, message.request_body.body, "request")
            if message.request_body.end_of_stream:
                self.request_sent = time.perf_counter()
        elif kind == "response_headers":
            self.answer_started = time.perf_counter()
            _headers(message.response_headers.headers, _RESPONSE_KEEP, self.response_headers)
            return self._end() if message.response_headers.end_of_stream else False  # trailers-only
        elif kind == "response_body":
            self._keep(self.response_body, message.response_body.body, "response")
            return self._end() if message.response_body.end_of_stream else False
        elif kind == "response_trailers":
            _headers(message.response_trailers.trailers, _RESPONSE_KEEP, self.response_headers)
            return self._end()
        return False

    def _keep(self, chunks: list[bytes], body: bytes, which: str) -> None:
        if self.ignored or not body:
            return
        self.kept += len(body)
        if self.kept > self.limit:
            self.overflow = self.overflow or which
            chunks.clear()
            return
        if not self.overflow:
            chunks.append(body)

    def _end(self) -> bool:
        self.ended = time.perf_counter()
        return True


class TapParseError(ValueError):
    """A body the tap cannot read; str() is the reason (a metric label)."""


def message_of(chunks: list[bytes], message):
    """The protobuf message in a body that is one uncompressed gRPC frame."""
    data = b"".join(chunks)
    if len(data) < 5:
        raise TapParseError("no_frame")
    if data[0] != 0:
        raise TapParseError("compressed")
    length = int.from_bytes(data[1:5], "big")
    if len(data) < 5 + length:
        raise TapParseError("truncated")
    try:
        message.ParseFromString(data[5:5 + length])
    except Exception:
        raise TapParseError("unparsable") from None
    return message


_HTTP_TO_GRPC = {400: grpc.StatusCode.INTERNAL, 401: grpc.StatusCode.UNAUTHENTICATED,
                 403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.UNIMPLEMENTED,
                 429: grpc.StatusCode.UNAVAILABLE, 502: grpc.StatusCode.UNAVAILABLE,
                 503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.UNAVAILABLE}
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_of(exchange: Exchange) -> tuple[grpc.StatusCode, str]:
    """The gRPC status the client got, as far as the tap saw (gRPC's HTTP mapping without a grpc-status)."""
    headers = exchange.response_headers
    message = urllib.parse.unquote(headers.get("grpc-message", ""))
    if "grpc-status" in headers:
        try:
            return _CODES.get(int(headers["grpc-status"]), grpc.StatusCode.UNKNOWN), message
        except ValueError:
            return grpc.StatusCode.UNKNOWN, f"unreadable grpc-status {headers['grpc-status']!r}"
    status = headers.get(":status", "")
    if status and status != "200":
        return _HTTP_TO_GRPC.get(int(status) if status.isdigit() else 0, grpc.StatusCode.UNKNOWN), \
            message or f"HTTP status {status} without a gRPC status"
    if exchange.answer_started is None:
        return grpc.StatusCode.CANCELLED, "the stream ended before any answer (reset or the caller went away)"
    return grpc.StatusCode.CANCELLED, "the answer ended without a gRPC status (stream reset)"


def decoded_inputs(request: pb.ModelInferRequest, package: ModelPackage):
    """The request's tensors as the adapter's own path records them (one value per row flattened)."""
    signature = package.manifest.signature
    raw = request.raw_input_contents
    inputs = {}
    for i, tensor in enumerate(request.inputs):
        array = decode_tensor(tensor.name, tensor.datatype, tensor.shape, tensor.contents, raw[i] if raw else None)
        spec = next((s for s in signature.inputs if s.name == tensor.name), None)
        inputs[tensor.name] = array.reshape(-1) if spec and one_value_per_row(spec.shape, array.shape) else array
    return inputs


def decoded_outputs(response: pb.ModelInferResponse):
    raw = response.raw_output_contents
    return {t.name: decode_tensor(t.name, t.datatype, t.shape, t.contents, raw[i] if raw else None)
            for i, t in enumerate(response.outputs)}


class ForeignRequest(Exception):
    """The exchange names a model this adapter does not serve."""


def event_of(exchange: Exchange, package: ModelPackage) -> tuple[InferenceEvent, list[str]]:
    """The InferenceEvent of an ended exchange, and why parts of it are missing (empty: whole)."""
    headers, missing = exchange.request_headers, []
    request = None
    if exchange.overflow == "request":
        missing.append("request_too_large")
    else:
        try:
            request = message_of(exchange.request_body, pb.ModelInferRequest())
        except TapParseError as exc:
            missing.append(f"request_{exc}")
    model = request.model_name if request is not None and request.model_name else headers.get(MODEL_HEADER, "")
    version = request.model_version if request is not None else headers.get(VERSION_HEADER, "")
    if model != package.name or version not in ("", package.version):
        raise ForeignRequest(f"{model}:{version}")
    call = call_of(exchange, request.id if request is not None else "")
    code, error = status_of(exchange)
    event = InferenceEvent(side="adapter", call=call, model=package.name, version=package.version,
                           started_at=exchange.started_at, code=code, error=error)
    if request is not None:
        try:
            event.inputs = decoded_inputs(request, package)
        except InvalidInput:
            missing.append("request_tensors")  # Triton refused it too; the record keeps its status
    if code == grpc.StatusCode.OK:
        missing += _outputs_into(event, exchange)
    _timings(event, exchange)
    return event, missing


def _outputs_into(event: InferenceEvent, exchange: Exchange) -> list[str]:
    if exchange.overflow == "response":
        return ["response_too_large"]
    try:
        event.outputs = decoded_outputs(message_of(exchange.response_body, pb.ModelInferResponse()))
    except TapParseError as exc:
        return [f"response_{exc}"]
    except InvalidInput:
        return ["response_tensors"]
    return []


def call_of(exchange: Exchange, request_id_field: str) -> CallInfo:
    """Request id, role and trace as the adapter reads them; the role from Envoy's variant header
    ("VERSION ROLE", on the answer) or, failing that, the role header on the request."""
    headers = exchange.request_headers
    variant = exchange.response_headers.get(VARIANT_HEADER, "").split()
    role = variant[1] if len(variant) == 2 else headers.get(ROLE_HEADER, PRIMARY)
    metadata = list(headers.items())
    return CallInfo(request_id=request_id_of(metadata, request_id_field), role=role if role in ROLES else PRIMARY,
                    pinned_version=headers.get(VERSION_HEADER, ""), trace_id=trace_id_of(metadata))


def _timings(event: InferenceEvent, exchange: Exchange) -> None:
    """Times as Envoy's copies reached the tap: the whole exchange, and Triton's part of it (from the
    request's last byte to the answer's first), which the adapter's own path calls predict."""
    ended = exchange.ended or time.perf_counter()
    event.timings["total"] = ended - exchange.started
    if exchange.request_sent is not None and exchange.answer_started is not None:
        event.timings["predict"] = max(0.0, exchange.answer_started - exchange.request_sent)


class _EndsAt:
    """A span whose end() ends it when the exchange ended, not when an observer gets to it."""

    def __init__(self, span, end_ns: int):
        self._span, self._end_ns = span, end_ns

    def end(self, end_time: int | None = None) -> None:
        self._span.end(end_time=end_time or self._end_ns)

    def __getattr__(self, name):
        return getattr(self._span, name)


class SideTap:
    """The ext_proc server of one Triton adapter: exchanges in, InferenceEvents to its observers out."""

    def __init__(self, package: ModelPackage, observers: Observers, traced: bool = False,
                 max_body_bytes: int = 16 * 1024 * 1024):
        self.package = package
        self.observers = observers
        self.traced = traced
        self.max_body_bytes = max_body_bytes
        self.address = ""
        self._queue: asyncio.Queue[Exchange] = asyncio.Queue(QUEUE_LIMIT)
        self._server: grpc.aio.Server | None = None
        self._worker: asyncio.Task | None = None
        self._labels = (package.name, package.version)

    async def start(self, listen: str) -> str:
        messages = ext_proc_stubs()
        handler = grpc.stream_stream_rpc_method_handler(
            self._process, request_deserializer=messages.ProcessingRequest.FromString,
            response_serializer=messages.ProcessingResponse.SerializeToString)
        self._server = grpc.aio.server(options=[("grpc.so_reuseport", 0),
                                                ("grpc.max_receive_message_length", 2 * self.max_body_bytes)])
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Process": handler}),))
        port = self._server.add_insecure_port(listen)
        if port == 0:
            raise ManifestError(str(self.package.manifest_path), "--tap-listen", f"cannot listen on {listen}",
                                "give a free host:port")
        await self._server.start()
        self._worker = asyncio.get_running_loop().create_task(self._drain())
        self.address = f"{listen.rpartition(':')[0]}:{port}"
        log.info("side tap for %s:%s on %s", *self._labels, self.address)
        return self.address

    async def _process(self, request_iterator, context) -> None:
        """One exchange: keep what Envoy sends, nothing else; hand it on when it ends however it ends."""
        exchange = Exchange(self.max_body_bytes)
        seen = False
        try:
            async for message in request_iterator:
                seen = True
                if exchange.take(message):
                    break
        finally:
            if not exchange.ignored:
                self._hand_on(exchange, seen)

    def _hand_on(self, exchange: Exchange, seen: bool) -> None:
        if not seen or not exchange.request_headers:
            LOST.labels(*self._labels, "empty_stream").inc()
            return
        try:
            self._queue.put_nowait(exchange)
        except asyncio.QueueFull:
            LOST.labels(*self._labels, "queue_full").inc()

    async def _drain(self) -> None:
        while True:
            exchange = await self._queue.get()
            try:
                await self._observe(exchange)
            except asyncio.CancelledError:
                raise
            except Exception:
                LOST.labels(*self._labels, "failed").inc()
                log.exception("the side tap could not record a request of %s:%s", *self._labels)

    async def _observe(self, exchange: Exchange) -> None:
        try:
            event, missing = event_of(exchange, self.package)
        except ForeignRequest as exc:
            LOST.labels(*self._labels, "other_model").inc()
            log.warning("the side tap of %s:%s saw a request for %s; is Envoy's ext_proc filter on the right "
                        "route?", *self._labels, exc)
            return
        for reason in missing:
            INCOMPLETE.labels(*self._labels, reason).inc()
        if not self.traced:
            await self.observers.notify(event)
            return
        await self._notify_traced(event, exchange)

    async def _notify_traced(self, event: InferenceEvent, exchange: Exchange) -> None:
        """Notify inside a span continuing the client's trace, timed as the exchange was."""
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        from meshserve.observability.call_context import CallSpan, reset_call_span, set_call_span
        from meshserve.observability.tracing import tracer

        carrier = {k: v for k, v in exchange.request_headers.items() if k in TRACE_CONTEXT_HEADERS}
        start_ns = int(event.started_at * 1e9)
        span = tracer().start_span("ModelInfer", context=propagate.extract(carrier), kind=SpanKind.SERVER,
                                   start_time=start_ns, attributes={
                                       "rpc.system": "grpc", "rpc.service": "inference.GRPCInferenceService",
                                       "rpc.method": "ModelInfer", "meshserve.side": "adapter",
                                       "meshserve.tap": True})
        call = CallSpan(_EndsAt(span, start_ns + int(event.timings.get("total", 0.0) * 1e9)))
        token = set_call_span(call)  # the observers scheduled now run in this context
        try:
            await self.observers.notify(event)
        finally:
            reset_call_span(token)
            asyncio.get_running_loop().call_soon(call.end_unless_taken)

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stop taking streams, then record what is queued."""
        if self._server is not None:
            await self._server.stop(grace_s)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._flush(), timeout=5.0)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _flush(self) -> None:
        while not self._queue.empty():
            await asyncio.sleep(0.01)
