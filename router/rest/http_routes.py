"""The router's REST listener: the KServe V2 REST routes over aiohttp, each a servicer call.

    GET  /v2/health/live | /v2/health/ready                    200, or 400 when not ready
    GET  /v2                                                   server metadata
    GET  /v2/models/{model}[/versions/{version}]               model metadata
    GET  /v2/models/{model}[/versions/{version}]/ready         200, or 400 when not ready
    GET  /v2/models/{model}[/versions/{version}]/config        Triton's model configuration
    POST /v2/models/{model}[/versions/{version}]/infer         inference, JSON or binary tensors
    GET  /v2/models/stats, /v2/models/{model}[/versions/{version}]/stats   Triton's statistics
    POST /v2/repository/index                                  models and versions with their state

Behind Envoy this listener shares the front address with gRPC (Envoy routes by content type);
errors are `{"error": "..."}` with the HTTP status of the gRPC status (status_codes.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import grpc
from aiohttp import web
from tritonclient.grpc import service_pb2 as pb

from meshserve.core.errors import InvalidInput, MeshError, bounded
from meshserve.core.settings import get_settings
from meshserve.router.rest.infer_body import HEADER_LENGTH, parse_request, response_body
from meshserve.router.rest.message_json import metadata_json, to_json
from meshserve.router.rest.servicer_calls import CallAborted, HttpCallContext, ServicerCalls
from meshserve.router.rest.status_codes import http_status

log = logging.getLogger("meshserve.rest")

# Headers about the HTTP exchange itself; every other request header reaches the servicer as
# metadata, as a gRPC client's would (x-request-id, traceparent, Envoy's principal).
HTTP_ONLY_HEADERS = {"host", "connection", "keep-alive", "content-length", "content-type", "content-encoding",
                     "transfer-encoding", "accept", "accept-encoding", "te", "upgrade", "user-agent",
                     HEADER_LENGTH.lower()}
ANSWER_HEADERS = ("x-request-id", "x-meshserve-trace-id")
NOT_READY = {"error": "not ready: a model cannot answer yet (starting, or its adapters are down); retry shortly"}


def _metadata(request: web.Request) -> list[tuple[str, str]]:
    return [(key.lower(), value) for key, value in request.headers.items()
            if key.lower() not in HTTP_ONLY_HEADERS and value.isascii() and value.isprintable()]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": bounded(message)}, status=status, headers=headers)


class RestRoutes:
    def __init__(self, calls: ServicerCalls):
        self.calls = calls

    async def _call(self, request: web.Request, method: str, message,
                    answer: Callable[[object, HttpCallContext], web.Response | Awaitable[web.Response]]) -> web.Response:
        context = HttpCallContext(_metadata(request), peer=f"ipv4:{request.remote}")
        try:
            response = await self.calls.call(method, message, context)
        except CallAborted as exc:
            return _error(http_status(exc.code), exc.details, self._answer_headers(context))
        except MeshError as exc:
            return _error(http_status(exc.code), exc.message, self._answer_headers(context))
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
                return _error(400, "the repository index request body must be JSON like {\"ready\": true}")

        def answer(response, _):
            return web.json_response([to_json(model) for model in response.models])
        return await self._call(request, "RepositoryIndex", pb.RepositoryIndexRequest(ready=ready), answer)

    async def infer(self, request: web.Request) -> web.Response:
        limit = get_settings().max_message_bytes
        too_large = (f"the request body is larger than MESHSERVE_MAX_MESSAGE_BYTES ({limit} bytes); send fewer "
                     "rows per request")
        if request.content_length is not None and request.content_length > limit:
            return _error(400, f"{too_large} (it has {request.content_length})")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(400, too_large)
        model = self._model(request)
        try:
            inference = parse_request(model["name"], model["version"], body, request.headers.get(HEADER_LENGTH),
                                      limit)
        except InvalidInput as exc:
            return _error(400, exc.message)

        def answer(response, context):
            payload, header_length = response_body(response, inference)
            headers = self._answer_headers(context)
            if header_length is None:
                return web.Response(body=payload, content_type="application/json", headers=headers)
            headers[HEADER_LENGTH] = str(header_length)
            return web.Response(body=payload, content_type="application/octet-stream", headers=headers)
        return await self._call(request, "ModelInfer", inference.request, answer)

    @staticmethod
    def _model(request: web.Request) -> dict[str, str]:
        return {"name": request.match_info["model"], "version": request.match_info.get("version", "")}


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    """aiohttp's own refusals (no such route, wrong method) and unexpected failures as JSON errors."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        hint = "; the routes are under /v2 (see docs/rest.md)" if exc.status == 404 else ""
        return _error(exc.status, f"{exc.reason}: {request.method} {bounded(request.path, 200)}{hint}")
    except Exception as exc:  # a fault of ours: one logged traceback, a plain 500 for the client
        log.exception("REST %s %s failed", request.method, bounded(request.path, 200))
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")


def rest_app(calls: ServicerCalls) -> web.Application:
    routes = RestRoutes(calls)
    # The body limit is checked by the infer route itself, to answer with the setting's name.
    app = web.Application(middlewares=[json_errors], client_max_size=get_settings().max_message_bytes)
    app.router.add_get("/v2/health/live", routes.live)
    app.router.add_get("/v2/health/ready", routes.ready)
    app.router.add_get("/v2", routes.server_metadata)
    app.router.add_get("/v2/models/stats", routes.statistics)  # before /v2/models/{model}, which it would match
    app.router.add_post("/v2/repository/index", routes.repository_index)
    for model in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        app.router.add_get(model, routes.model_metadata)
        app.router.add_get(model + "/ready", routes.model_ready)
        app.router.add_get(model + "/config", routes.model_config)
        app.router.add_get(model + "/stats", routes.statistics)
        app.router.add_post(model + "/infer", routes.infer)
    return app


async def start_rest(servicer, interceptors: Sequence[grpc.aio.ServerInterceptor], listen: str,
                     ssl_context=None) -> web.AppRunner:
    """Serve SERVICER over REST on LISTEN (host:port); stop with `await runner.cleanup()`."""
    runner = web.AppRunner(rest_app(ServicerCalls(servicer, interceptors)), access_log=None,
                           shutdown_timeout=get_settings().shutdown_grace_s)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    site = web.TCPSite(runner, host.strip("[]"), int(port), ssl_context=ssl_context, reuse_port=False)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(f"meshserve router: cannot serve REST on {listen} ({exc.strerror}); is the port in use?")
    return runner
