"""The HTTP side of the REST binding that every REST listener shares (aiohttp).

The router serves REST beside its gRPC service, and each adapter serves it beside its own so
Envoy's front can send an inference straight to the adapter of the chosen version. Both must
read bodies, refuse oversized ones, answer binary tensors and shape errors identically, so the
exchange itself lives here once; what each side calls with the parsed request is its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web
from tritonclient.grpc import service_pb2 as pb

from meshserve.core.errors import InvalidInput, bounded
from meshserve.core.mesh_protocol import MESH_SECRET_HEADER, Metadata
from meshserve.core.mesh_secret import REFUSAL, carries_mesh_secret, mesh_secret
from meshserve.core.rest_bodies import HEADER_LENGTH, RestInference, parse_request, response_body
from meshserve.core.settings import get_settings

log = logging.getLogger("meshserve.rest")

# Headers about the HTTP exchange itself; every other request header is the call's metadata, as
# a gRPC client's would be (x-request-id, traceparent, the role Envoy stamped, its principal).
HTTP_ONLY_HEADERS = {"host", "connection", "keep-alive", "content-length", "content-type", "content-encoding",
                     "transfer-encoding", "accept", "accept-encoding", "te", "upgrade", "user-agent",
                     HEADER_LENGTH.lower()}
MODEL_PATHS = ("/v2/models/{model}", "/v2/models/{model}/versions/{version}")


def request_metadata(request: web.Request) -> Metadata:
    """The request's headers as a gRPC call's invocation metadata (lower-case keys, text values)."""
    return [(key.lower(), value) for key, value in request.headers.items()
            if key.lower() not in HTTP_ONLY_HEADERS and key.lower() != MESH_SECRET_HEADER
            and value.isascii() and value.isprintable()]


def model_of(request: web.Request) -> tuple[str, str]:
    """The model and version the path names ("" for the version when it names none)."""
    return request.match_info["model"], request.match_info.get("version", "")


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": bounded(message)}, status=status, headers=headers)


async def read_inference(request: web.Request) -> RestInference:
    """The inference an HTTP request carries, as a ModelInferRequest and how its outputs should
    travel back; InvalidInput for a body that is too large or malformed."""
    limit = get_settings().max_message_bytes
    too_large = (f"the request body is larger than MESHSERVE_MAX_MESSAGE_BYTES ({limit} bytes); send fewer "
                 "rows per request")
    # Refused from its Content-Length, before a byte of it is read.
    if request.content_length is not None and request.content_length > limit:
        raise InvalidInput(None, f"{too_large} (it has {request.content_length})")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise InvalidInput(None, too_large) from None
    name, version = model_of(request)
    return parse_request(name, version, body, request.headers.get(HEADER_LENGTH), limit)


def inference_response(response: pb.ModelInferResponse, inference: RestInference,
                       headers: Mapping[str, str] | None = None) -> web.Response:
    """The HTTP answer to an inference: JSON, or JSON then binary outputs when the client asked."""
    payload, header_length = response_body(response, inference)
    headers = dict(headers or {})
    if header_length is None:
        return web.Response(body=payload, content_type="application/json", headers=headers)
    headers[HEADER_LENGTH] = str(header_length)
    return web.Response(body=payload, content_type="application/octet-stream", headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    """aiohttp's own refusals (no such route, wrong method) and unexpected failures as JSON errors."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        hint = "; the routes are under /v2 (see docs/rest.md)" if exc.status == 404 else ""
        return error_response(exc.status, f"{exc.reason}: {request.method} {bounded(request.path, 200)}{hint}")
    except Exception as exc:  # a fault of ours: one logged traceback, a plain 500 for the client
        log.exception("REST %s %s failed", request.method, bounded(request.path, 200))
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


@web.middleware
async def mesh_secret_required(request: web.Request, handler) -> web.StreamResponse:
    """In a mesh with a secret, a request without it is refused (401) before a byte of its body is read."""
    if not carries_mesh_secret(request.headers.get(MESH_SECRET_HEADER)):
        return error_response(401, REFUSAL)
    return await handler(request)


def rest_application() -> web.Application:
    # The body limit is checked by read_inference itself, to answer with the setting's name.
    guards = [mesh_secret_required] if mesh_secret() else []
    return web.Application(middlewares=[*guards, json_errors], client_max_size=get_settings().max_message_bytes)


async def serve_application(app: web.Application, listen: str, who: str, ssl_context=None) -> web.AppRunner:
    """Serve APP on LISTEN (host:port); stop with `await runner.cleanup()`. WHO names the process
    in the message that ends it when the port cannot be had."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=get_settings().shutdown_grace_s)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    site = web.TCPSite(runner, host.strip("[]"), int(port), ssl_context=ssl_context, reuse_port=False)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(f"meshserve {who}: cannot serve REST on {listen} ({exc.strerror}); is the port in use?")
    return runner
