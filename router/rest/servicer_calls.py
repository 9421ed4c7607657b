"""Calling the router's gRPC servicer for an HTTP request, as the gRPC server would.

The REST binding has no inference path of its own: each route names a unary method of the
servicer (ModelInfer, ModelMetadata, ...) and hands it the same protobuf request a gRPC client
sends, with an `HttpCallContext` standing in for grpc's ServicerContext. The call runs through
the same server interceptors (spans, in-flight gauge), so request ids, validation, records,
traces and metrics are the gRPC path's own. A method the servicer gains later is reachable
over REST by adding a route.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import grpc

from meshserve.core.mesh_protocol import Metadata

SERVICE = "inference.GRPCInferenceService"


class CallAborted(grpc.aio.AbortError):
    """The servicer ended the call with a status (grpc's `context.abort`)."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code, self.details = code, details


class HttpCallContext:
    """What a servicer reads and sets on a call, for one HTTP request: the request's headers as
    invocation metadata, trailing metadata kept for the response's headers, abort as an exception."""

    def __init__(self, metadata: Metadata, peer: str = ""):
        self._metadata = tuple(metadata)
        self._peer = peer
        self.trailing: tuple[tuple[str, str], ...] = ()
        self.aborted: CallAborted | None = None

    def invocation_metadata(self) -> tuple:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None  # HTTP carries no deadline: the forwarder applies the mesh's default, as for gRPC without one

    def set_trailing_metadata(self, metadata) -> None:
        self.trailing = tuple(metadata)

    def peer(self) -> str:
        return self._peer

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata=()) -> None:
        if self.aborted is None:  # as in grpc, the first status stands
            self.aborted = CallAborted(code, details)
        raise self.aborted


class _CallDetails(NamedTuple):
    method: str
    invocation_metadata: tuple


class ServicerCalls:
    """Unary methods of SERVICER, called through INTERCEPTORS (the gRPC server's, in its order)."""

    def __init__(self, servicer: Any, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()):
        self.servicer = servicer
        self.interceptors = list(interceptors)

    async def call(self, method: str, request: Any, context: HttpCallContext) -> Any:
        """The answer of METHOD to REQUEST; raises CallAborted with the status it ended with."""
        async def servicer_handler(_details):
            return grpc.unary_unary_rpc_method_handler(getattr(self.servicer, method))
        continuation = servicer_handler
        for interceptor in reversed(self.interceptors):
            continuation = _chained(interceptor, continuation)
        handler = await continuation(_CallDetails(f"/{SERVICE}/{method}", context.invocation_metadata()))
        return await handler.unary_unary(request, context)


def _chained(interceptor: grpc.aio.ServerInterceptor, continuation):
    async def intercepted(details):
        return await interceptor.intercept_service(continuation, details)
    return intercepted
