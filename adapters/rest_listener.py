"""The adapter's REST listener: the Open Inference Protocol's REST binding beside its gRPC service.

    GET  /v2/health/live | /v2/health/ready                    200, or 400 when not ready
    GET  /v2/models/{model}[/versions/{version}]               model metadata
    GET  /v2/models/{model}[/versions/{version}]/ready         200, or 400 when not ready
    POST /v2/models/{model}[/versions/{version}]/infer         inference, JSON or binary tensors

It exists so Envoy's front can send a REST inference straight to the adapter serving the chosen
version (one proxy hop), as it does gRPC ModelInfer, instead of through the router. Each route
calls the transport-free data plane (`ModelService`) directly, as the gRPC servicer does, so
checks, records, statistics and metrics are the same observers' for both bindings; bodies,
tensors, statuses and the HTTP exchange are the router's REST listener's own
(meshserve/core/rest_*.py), so a client cannot tell which of the two answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from meshserve.adapters.dataplane import ModelService
from meshserve.core.errors import InvalidInput, MeshError, ModelNotFound, quoted
from meshserve.core.internal_tls import server_ssl_context
from meshserve.core.mesh_protocol import (
    REQUEST_ID_HEADER, TRACE_CONTEXT_HEADERS, TRACE_ID_HEADER, CallInfo, Metadata)
from meshserve.core.rest_exchange import (
    MODEL_PATHS, error_response, inference_response, model_of, read_inference, request_metadata, rest_application,
    serve_application)
from meshserve.core.rest_messages import metadata_json
from meshserve.core.rest_statuses import http_status
from meshserve.observability.call_context import CallSpan, reset_call_span, set_call_span
from meshserve.observability.metrics import IN_FLIGHT
from meshserve.observability.tracing import tracer


def not_served(service: ModelService, name: str, version: str) -> ModelNotFound:
    package = service.package
    return ModelNotFound(f"this adapter serves {package.name} version {package.version}, "
                         f"not {quoted(name)}{' version ' + quoted(version) if version else ''}")


class AdapterRestRoutes:
    """The routes over one ModelService; TRACED: the process exports spans (OTEL_* settings)."""

    def __init__(self, service: ModelService, traced: bool = False):
        self.service = service
        self.traced = traced

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        # The protocol's answer is the status (200 ready, 4xx not); the body is for people.
        if await self.service.runtime.ready():
            return web.json_response({"ready": True})
        package = self.service.package
        return error_response(400, f"not ready: {package.name} version {package.version} cannot answer yet "
                                   "(loading, or its model server is restarting); retry shortly")

    async def model_metadata(self, request: web.Request) -> web.Response:
        name, version = model_of(request)
        if not self.service.serves(name, version):
            return error_response(404, not_served(self.service, name, version).message)
        return web.json_response(metadata_json(self.service.metadata()))

    async def model_ready(self, request: web.Request) -> web.Response:
        name, version = model_of(request)
        if self.service.serves(name, version) and await self.service.runtime.ready():
            return web.json_response({"ready": True})
        return error_response(400, f"model '{quoted(name)}' is not ready (unknown, or not answering yet)")

    async def infer(self, request: web.Request) -> web.Response:
        metadata = request_metadata(request)
        try:
            inference = await read_inference(request)
        except InvalidInput as exc:
            # Refused before the body's own id could be read: the header's, else a new one.
            return error_response(400, exc.message, {REQUEST_ID_HEADER: CallInfo.from_metadata(metadata).request_id})
        # The request id (x-request-id, else the body's id), the role Envoy stamped; the body's
        # `timeout` parameter is the deadline, kept by the data plane as for a gRPC request.
        call = CallInfo.from_metadata(metadata, inference.request.id)
        headers = {REQUEST_ID_HEADER: call.request_id}
        name, version = model_of(request)
        with self._served_call(metadata, headers) as span:
            try:
                if not self.service.serves(name, version):
                    raise not_served(self.service, name, version)
                response = await self.service.infer(inference.request, call)
            except MeshError as exc:
                if span is not None:
                    span.error = exc.message
                # retry-after travels beside the request id, as in a gRPC refusal's trailers
                trailers = dict(getattr(exc, "trailers", ()))
                return error_response(http_status(exc.code), exc.message, {**headers, **trailers})
        return inference_response(response, inference, headers)

    @contextmanager
    def _served_call(self, metadata: Metadata, headers: dict[str, str]) -> Iterator[CallSpan | None]:
        """What gRPC's inference-call interceptor does for ModelInfer: count the call in flight and,
        when tracing, open its server span (continuing the caller's traceparent) for the tracing
        observer to fill, naming the trace in the answer's headers."""
        gauge = IN_FLIGHT.labels("adapter", self.service.package.name)
        gauge.inc()
        if not self.traced:
            try:
                yield None
            finally:
                gauge.dec()
            return
        carrier = {key: value for key, value in metadata if key in TRACE_CONTEXT_HEADERS and isinstance(value, str)}
        span = tracer().start_span("ModelInfer", context=propagate.extract(carrier), kind=SpanKind.SERVER,
                                   attributes={"rpc.system": "http", "rpc.method": "ModelInfer",
                                               "meshserve.side": "adapter"})
        call = CallSpan(span)
        tokens = (otel_context.attach(trace.set_span_in_context(span)), set_call_span(call))
        if call.trace_id:
            headers[TRACE_ID_HEADER] = call.trace_id
        try:
            yield call
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                call.error = str(exc) or type(exc).__name__
            raise
        finally:
            reset_call_span(tokens[1])
            otel_context.detach(tokens[0])
            # After the observers the inference scheduled, so the tracing observer ends it first.
            asyncio.get_running_loop().call_soon(call.end_unless_taken)
            gauge.dec()


def adapter_rest_app(service: ModelService, traced: bool = False) -> web.Application:
    routes = AdapterRestRoutes(service, traced)
    app = rest_application()
    app.router.add_get("/v2/health/live", routes.live)
    app.router.add_get("/v2/health/ready", routes.ready)
    for model in MODEL_PATHS:
        app.router.add_get(model, routes.model_metadata)
        app.router.add_get(model + "/ready", routes.model_ready)
        app.router.add_post(model + "/infer", routes.infer)
    return app


async def start_adapter_rest(service: ModelService, listen: str, traced: bool = False) -> web.AppRunner:
    """Serve SERVICE over REST on LISTEN (host:port), with the internal TLS the gRPC port has when
    the mesh asks for it; stop with `await runner.cleanup()`."""
    return await serve_application(adapter_rest_app(service, traced), listen, "adapter", server_ssl_context())
