"""The router's REST listener: the KServe V2 REST routes over aiohttp, each a servicer call.

    GET  /v2/health/live | /v2/health/ready                    200, or 400 when not ready
    GET  /v2                                                   server metadata
    GET  /v2/models/{model}[/versions/{version}]               model metadata
    GET  /v2/models/{model}[/versions/{version}]/ready         200, or 400 when not ready
    GET  /v2/models/{model}[/versions/{version}]/config        Triton's model configuration
    POST /v2/models/{model}[/versions/{version}]/infer         inference, JSON or binary tensors
    GET  /v2/models/stats, /v2/models/{model}[/versions/{version}]/stats   Triton's statistics
    POST /v2/repository/index                                  models and versions with their state
    /console/...                                               the operator's console (meshserve/console/)

Behind Envoy this listener shares the front address with gRPC (Envoy routes by content type);
errors are `{"error": "..."}` with the HTTP status of the gRPC status. Bodies, tensors and the
HTTP exchange are shared with the adapters' REST listeners (meshserve/core/rest_*.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import grpc
from aiohttp import web
from tritonclient.grpc import service_pb2 as pb

from meshserve.core.errors import InvalidInput, MeshError
from meshserve.core.rest_exchange import (
    MODEL_PATHS, error_response, inference_response, model_of, read_inference, request_metadata, rest_application,
    serve_application)
from meshserve.core.rest_messages import metadata_json, to_json
from meshserve.core.rest_statuses import http_status
from meshserve.router.rest.servicer_calls import CallAborted, HttpCallContext, ServicerCalls

ANSWER_HEADERS = ("x-request-id", "x-meshserve-trace-id")
NOT_READY = {"error": "not ready: a model cannot answer yet (starting, or its adapters are down); retry shortly"}


class RestRoutes:
    def __init__(self, calls: ServicerCalls):
        self.calls = calls

    async def _call(self, request: web.Request, method: str, message,
                    answer: Callable[[object, HttpCallContext], web.Response | Awaitable[web.Response]]) -> web.Response:
        context = HttpCallContext(request_metadata(request), peer=f"ipv4:{request.remote}")
        try:
            response = await self.calls.call(method, message, context)
        except CallAborted as exc:
            return error_response(http_status(exc.code), exc.details, self._answer_headers(context))
        except MeshError as exc:
            return error_response(http_status(exc.code), exc.message, self._answer_headers(context))
        return answer(response, context)

    @staticmethod
    def _answer_headers(context: HttpCallContext) -> dict[str, str]:
        return {key: value for key, value in context.trailing if key in ANSWER_HEADERS and isinstance(value, str)}

    async def live(self, request: web.Request) -> web.Response:
        return await self._call(request, "ServerLive", pb.ServerLiveRequest(),
                                lambda r, _: web.json_response({"live": r.live}, status=200 if r.live else 400))

    async def ready(self, request: web.Request) -> web.Response:
        # The protocol's answer is the status (200 ready, 4xx not); the body is for people.
        return await self._call(request, "ServerReady", pb.ServerReadyRequest(), lambda r, _: web.json_response(
            {"ready": True} if r.ready else NOT_READY, status=200 if r.ready else 400))

    async def server_metadata(self, request: web.Request) -> web.Response:
        return await self._call(request, "ServerMetadata", pb.ServerMetadataRequest(),
                                lambda response, _: web.json_response(metadata_json(response)))

    async def model_metadata(self, request: web.Request) -> web.Response:
        return await self._call(request, "ModelMetadata", pb.ModelMetadataRequest(**self._model(request)),
                                lambda r, _: web.json_response(metadata_json(r)))

    async def model_ready(self, request: web.Request) -> web.Response:
        def answer(response, _):
            return web.json_response({"ready": True} if response.ready else {
                "error": f"model '{request.match_info['model']}' is not ready (unknown, or not answering yet)"},
                status=200 if response.ready else 400)
        return await self._call(request, "ModelReady", pb.ModelReadyRequest(**self._model(request)), answer)

    async def model_config(self, request: web.Request) -> web.Response:
        def answer(response, _):
            document = to_json(response.config)
            document.setdefault("max_batch_size", 0)  # 0 says the dims are full shapes; tools read it
            return web.json_response(document)
        return await self._call(request, "ModelConfig", pb.ModelConfigRequest(**self._model(request)), answer)

    async def statistics(self, request: web.Request) -> web.Response:
        """Triton's statistics extension: every model's, or one model's (and version's)."""
        model = {"name": request.match_info.get("model", ""), "version": request.match_info.get("version", "")}
        return await self._call(request, "ModelStatistics", pb.ModelStatisticsRequest(**model),
                                lambda response, _: web.json_response(to_json(response, defaults=True)))

    async def repository_index(self, request: web.Request) -> web.Response:
        """Triton's model repository extension: the models and versions with their state."""
        ready = False
        if request.can_read_body:
            try:
                ready = bool((await request.json() or {}).get("ready", False))
            except (ValueError, AttributeError):
                return error_response(400, "the repository index request body must be JSON like {\"ready\": true}")

        def answer(response, _):
            return web.json_response([to_json(model) for model in response.models])
        return await self._call(request, "RepositoryIndex", pb.RepositoryIndexRequest(ready=ready), answer)

    async def infer(self, request: web.Request) -> web.Response:
        try:
            inference = await read_inference(request)
        except InvalidInput as exc:
            return error_response(400, exc.message)
        return await self._call(request, "ModelInfer", inference.request, lambda response, context: inference_response(
            response, inference, self._answer_headers(context)))

    @staticmethod
    def _model(request: web.Request) -> dict[str, str]:
        name, version = model_of(request)
        return {"name": name, "version": version}


def rest_app(calls: ServicerCalls, extend: Callable[[web.Application], None] | None = None) -> web.Application:
    """The REST routes over CALLS; EXTEND adds the router's other pages (the console) to the same app."""
    routes = RestRoutes(calls)
    app = rest_application()
    if extend is not None:
        extend(app)
    app.router.add_get("/v2/health/live", routes.live)
    app.router.add_get("/v2/health/ready", routes.ready)
    app.router.add_get("/v2", routes.server_metadata)
    app.router.add_get("/v2/models/stats", routes.statistics)  # before /v2/models/{model}, which it would match
    app.router.add_post("/v2/repository/index", routes.repository_index)
    for model in MODEL_PATHS:
        app.router.add_get(model, routes.model_metadata)
        app.router.add_get(model + "/ready", routes.model_ready)
        app.router.add_get(model + "/config", routes.model_config)
        app.router.add_get(model + "/stats", routes.statistics)
        app.router.add_post(model + "/infer", routes.infer)
    return app


async def start_rest(servicer, interceptors: Sequence[grpc.aio.ServerInterceptor], listen: str,
                     ssl_context=None, extend: Callable[[web.Application], None] | None = None) -> web.AppRunner:
    """Serve SERVICER over REST on LISTEN (host:port); stop with `await runner.cleanup()`."""
    return await serve_application(rest_app(ServicerCalls(servicer, interceptors), extend), listen, "router",
                                   ssl_context)
