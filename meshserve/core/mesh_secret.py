"""The per-mesh secret that keeps the ports behind the front for the mesh's own processes.

The router and the adapters listen on 127.0.0.1, where any local process could call them and
skip the front's TLS, authentication and authorization, or pose as any principal by sending
`x-meshserve-principal` itself. When meshserve.yaml has a `security:` section without
`internal_tls`, `meshserve up` makes a random secret for the mesh (MESHSERVE_MESH_SECRET, handed
to its processes only); Envoy adds it to every request it sends behind the front, the router
and the deploy gate to their own calls, and every server refuses a call without it. Without
the setting nothing is checked, as before.
"""

from __future__ import annotations

import hmac
import secrets

import grpc

from meshserve.core.mesh_protocol import MESH_SECRET_HEADER
from meshserve.core.settings import get_settings, variable_for

REFUSAL = "this port is internal to the mesh; call the mesh's front address"
MESH_SECRET_ENV = variable_for("mesh_secret")  # as `meshserve up` hands it to its children (and Envoy reads it)


def new_mesh_secret() -> str:
    """32 random bytes as header-safe text."""
    return secrets.token_urlsafe(32)


def mesh_secret() -> str:
    """This process's mesh secret, or "" when the mesh checks none."""
    secret = get_settings().mesh_secret
    return secret.get_secret_value() if secret is not None else ""


def carries_mesh_secret(value: str | bytes | None) -> bool:
    """Whether VALUE (a call's secret header, None when absent) is this mesh's secret; true when
    the mesh checks none. Constant time, so the secret cannot be guessed a byte at a time."""
    secret = mesh_secret()
    if not secret:
        return True
    if value is None:
        return False
    given = value.encode() if isinstance(value, str) else value
    return hmac.compare_digest(given, secret.encode())


def mesh_secret_metadata() -> list[tuple[str, str]]:
    """The metadata a call to a mesh server needs (none when the mesh checks none)."""
    secret = mesh_secret()
    return [(MESH_SECRET_HEADER, secret)] if secret else []


class MeshSecretCheck(grpc.aio.ServerInterceptor):
    """Refuses a call without the mesh secret UNAUTHENTICATED, before any servicer or other
    interceptor does work for it."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        if handler is None or carries_mesh_secret(metadata.get(MESH_SECRET_HEADER)):
            return handler
        return _refusing(handler)


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same kind as HANDLER (unary or streaming each way) that only refuses."""
    async def refuse(_request, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)

    kind = {(False, False): grpc.unary_unary_rpc_method_handler, (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler, (True, True): grpc.stream_stream_rpc_method_handler}
    make = kind[(handler.request_streaming, handler.response_streaming)]
    return make(refuse, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


class _WithSecret:
    """Adds the mesh secret to a call's metadata on its way out."""

    def __init__(self, secret: str):
        self._header = (MESH_SECRET_HEADER, secret)

    async def _call(self, continuation, details: grpc.aio.ClientCallDetails, request):
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._header)
        return await continuation(details._replace(metadata=metadata), request)


class _UnaryUnary(_WithSecret, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await self._call(continuation, client_call_details, request)


class _StreamStream(_WithSecret, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return await self._call(continuation, client_call_details, request_iterator)


def mesh_secret_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors for a channel to a mesh server (an adapter, Envoy's mesh listener).
    grpc.aio files each interceptor under one kind only, hence one per kind the router calls
    (unary, and ModelStreamInfer's two-way stream); none when the mesh checks no secret."""
    secret = mesh_secret()
    return [_UnaryUnary(secret), _StreamStream(secret)] if secret else []
