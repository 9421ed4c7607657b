"""ModelStreamInfer's loop, shared by the router's servicer and the adapter's.

A stream carries many requests over one call: each is answered in turn, and a request that
fails gets an error message in the stream (as Triton sends one, naming the request) while
the stream goes on. Only an abort (the call itself refused) ends it. Each servicer says how
a message becomes a CallInfo and how it is answered; the loop is the same for both.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

import grpc
from tritonclient.grpc import service_pb2 as pb

from meshserve.core.errors import MeshError
from meshserve.core.mesh_protocol import CallInfo
from meshserve.core.request_parameters import stream_answer, stream_error

Answer = Callable[[pb.ModelInferRequest, CallInfo], Awaitable[pb.ModelInferResponse]]


async def answer_stream(requests: AsyncIterable[pb.ModelInferRequest],
                        call_of: Callable[[pb.ModelInferRequest], CallInfo],
                        answer: Answer) -> AsyncIterator[pb.ModelStreamInferResponse]:
    """One stream message per request: ANSWER's response, or the MeshError it raised as the
    stream's error for that request. Anything else (an abort) ends the stream."""
    async for request in requests:
        call = call_of(request)
        try:
            response = await answer(request, call)
        except grpc.aio.AbortError:
            raise
        except MeshError as exc:
            yield stream_error(request, call.request_id, exc)
            continue
        yield stream_answer(request, response)
