"""Errors that carry their gRPC status, so each service maps them in one place.

Runtimes and the router raise these; the servicers turn them into status codes.
"""

from __future__ import annotations

import grpc

# A status message travels in the grpc-message trailer. Envoy and gRPC cap the size of a
# header block (about 8-64 KB); a longer one is a protocol error that resets the whole
# HTTP/2 connection, failing every other client's request multiplexed on it. So anything a
# client sent is quoted by a bounded prefix, and every message is capped as a last guard.
QUOTE_LIMIT = 64
MESSAGE_LIMIT = 1024


def quoted(text: object, limit: int = QUOTE_LIMIT) -> str:
    """Client-sent text (a model, version or input name) safe to put in a message: at most
    LIMIT characters, printable, with the full length said when it was cut."""
    value = str(text)
    shown = value[:limit].encode("unicode_escape").decode("ascii")[:2 * limit]
    return shown if len(value) <= limit else f"{shown}... ({len(value)} characters)"


def bounded(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """MESSAGE cut to LIMIT characters, so a status can never break the connection it rides on."""
    marker = " ... (truncated)"
    return message if len(message) <= limit else message[:limit - len(marker)] + marker


class MeshError(Exception):
    """An error with the gRPC status it should become.

    Subclasses fix the code for their kind of failure; `MeshError(message, code)` carries any
    other status, such as one another server answered with (`from_status`).
    """

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @classmethod
    def from_status(cls, code: grpc.StatusCode, message: str) -> "MeshError":
        """Another server's answer, kept as it was: its status and its message."""
        return MeshError(message or code.name, code)


class InvalidInput(MeshError):
    """A request input does not fit the model's signature or declared types."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, input_name: str | None, reason: str, kind: str = "input"):
        self.input_name = input_name
        self.reason = reason
        where = f"{kind} '{quoted(input_name)}': " if input_name else ""
        super().__init__(f"{where}{reason}")


class ModelNotFound(MeshError):
    code = grpc.StatusCode.NOT_FOUND


class PermissionDenied(MeshError):
    """The caller is authenticated but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED


class AtCapacity(MeshError):
    """The mesh shed this request: a model's variant (or the router) has all the work it can take.

    Carries a `retry-after` trailer (seconds) so a client can back off rather than hammer.
    """

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.trailers = (("retry-after", f"{retry_after_s:g}"),)


class ModelUnavailable(MeshError):
    """The runtime behind a model is gone (crashed, restarting); callers may retry."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(MeshError):
    """The caller's deadline passed; no more work is done for the request."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class ModelFailed(MeshError):
    """The model's own code raised: INTERNAL with the exception's type and message."""

    code = grpc.StatusCode.INTERNAL

    @classmethod
    def from_exception(cls, exc: BaseException, origin: str = "python") -> "ModelFailed":
        return cls(f"model raised {type(exc).__name__} ({origin}): {exc}")


class ManifestError(ValueError):
    """A model package or deployment spec is malformed; the message names file, field and fix."""

    def __init__(self, path: str, field: str, problem: str, fix: str):
        self.path, self.field, self.problem, self.fix = path, field, problem, fix
        super().__init__(f"{path}: field '{field}': {problem}. Fix: {fix}")


async def abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    """End an RPC with the status an error stands for; unexpected errors become INTERNAL."""
    if isinstance(exc, MeshError):
        trailers = getattr(exc, "trailers", ())
        if trailers:  # beside what the servicer already set (the request id)
            await context.abort(exc.code, bounded(exc.message), tuple(context.trailing_metadata() or ()) + trailers)
        await context.abort(exc.code, bounded(exc.message))
    await context.abort(grpc.StatusCode.INTERNAL, bounded(f"{type(exc).__name__}: {exc}"))
