"""Unparsable request messages become INVALID_ARGUMENT, counted, not a traceback per request.

gRPC parses a request before any servicer code runs; when the bytes are not the message the
method takes, grpc's own handler logs a full traceback and answers UNKNOWN. A fuzzing or
buggy client could fill the log with thousands of them. Services are registered through
`add_guarded` instead, which parses leniently: a message that does not parse reaches a
small wrapper that answers INVALID_ARGUMENT, and is logged once per kind (method and parse
error) with a running count, then again at every power of ten.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Callable

import grpc

from meshserve.core.errors import bounded

log = logging.getLogger("meshserve.requests")

# (method, kind of parse error) -> how many requests were refused.
REFUSED: Counter[tuple[str, str]] = Counter()


class Unparsable:
    """What the lenient parser hands on instead of a message."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


def _lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse_or_mark(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:  # DecodeError, or anything a parser raises on hostile bytes
            return Unparsable(exc)
    return parse_or_mark


async def _refuse(method: str, message_type: str, unparsable: Unparsable, context) -> None:
    kind = (method, type(unparsable.error).__name__)
    REFUSED[kind] += 1
    count = REFUSED[kind]
    if str(count).rstrip("0") == "1":  # the 1st, 10th, 100th, ...: one line, never a traceback
        log.warning("refused %d unparsable request(s) to %s so far (%s: %s)", count, method, kind[1],
                    bounded(str(unparsable.error), 200))
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"the request is not a valid {message_type} message; send a serialized {message_type}")


def _guard(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    if handler.request_deserializer is None:
        return handler
    message_type = getattr(getattr(handler.request_deserializer, "__self__", None), "DESCRIPTOR", None)
    message_type = message_type.full_name if message_type is not None else "request"
    parse = _lenient(handler.request_deserializer)
    if handler.unary_unary is not None:
        behavior = handler.unary_unary

        async def unary_unary(request, context):
            if isinstance(request, Unparsable):
                await _refuse(method, message_type, request, context)
            return await behavior(request, context)
        return handler._replace(request_deserializer=parse, unary_unary=unary_unary)
    if handler.stream_stream is not None:
        stream_behavior = handler.stream_stream

        async def checked(requests, context):
            async for request in requests:
                if isinstance(request, Unparsable):
                    await _refuse(method, message_type, request, context)
                yield request

        async def stream_stream(requests, context):
            async for response in stream_behavior(checked(requests, context), context):
                yield response
        return handler._replace(request_deserializer=parse, stream_stream=stream_stream)
    return handler  # unary-stream and stream-unary: none in meshserve's services


class _Registration:
    """Stands in for a server while generated code registers its handlers, to catch them."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass  # the same handlers arrive through add_registered_method_handlers

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.service, self.handlers = service, handlers


def add_guarded(add_servicer_to_server: Callable[[Any, Any], None], servicer: Any, server: grpc.aio.Server) -> None:
    """`add_XServicer_to_server(servicer, server)`, with every method's request parsed leniently."""
    registration = _Registration()
    add_servicer_to_server(servicer, registration)
    guarded = {name: _guard(f"/{registration.service}/{name}", handler)
               for name, handler in registration.handlers.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(registration.service, guarded),))
    server.add_registered_method_handlers(registration.service, guarded)
