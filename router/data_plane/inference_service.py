"""The router's Open Inference Protocol service: what every client talks to.

A thin servicer: it reads each call's request id, metadata and deadline, hands the work to
the `Forwarder`, and turns errors into status codes. The request id goes back in the
response's `id` and in trailing metadata, answered or not.
"""

from __future__ import annotations

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

import meshserve
from meshserve.core.errors import MeshError, abort
from meshserve.core.mesh_protocol import (
    REQUEST_ID_HEADER, CallInfo, deadline_from, model_metadata, request_id_of, trace_id_of)
from meshserve.core.inference_stream import answer_stream
from meshserve.router.data_plane.authorization import ModelAccess
from meshserve.router.data_plane.forwarding import Forwarder
from meshserve.router.data_plane.triton_extensions import TritonExtensions, served_extensions


def call_of(context: grpc.aio.ServicerContext, request: pb.ModelInferRequest, streamed: bool = False) -> CallInfo:
    """The request id (x-request-id, else the request's id; in a stream, which shares one set of
    headers, each message's id) and the deadline. The role and the version are the mesh's to
    set, never the client's."""
    request_id = request_id_of((), request.id) if streamed else request_id_of(context.invocation_metadata(), request.id)
    return CallInfo(request_id=request_id, deadline=deadline_from(context.time_remaining()),
                    trace_id=trace_id_of(context.invocation_metadata()))


class RouterInferenceServicer(TritonExtensions, pb_grpc.GRPCInferenceServiceServicer):
    """The standard methods here; Triton's extensions in triton_extensions.py."""

    def __init__(self, forwarder: Forwarder, access: ModelAccess | None = None,
                 extensions: list[str] | None = None):
        self.forwarder = forwarder
        self.access = access or ModelAccess()
        self.extensions = served_extensions() if extensions is None else extensions

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=await self.forwarder.all_ready())

    async def ModelReady(self, request, context):
        await self._authorize(context, request.name)
        return pb.ModelReadyResponse(ready=await self.forwarder.ready(request.name, request.version))

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name="meshserve", version=meshserve.__version__,
                                         extensions=self.extensions)

    async def ModelMetadata(self, request, context):
        await self._authorize(context, request.name)
        try:
            versions, entry = self.forwarder.package_entry(request.name, request.version)
        except MeshError as exc:
            await abort(context, exc)
        return model_metadata(entry.package, [request.version] if request.version else versions)

    async def ModelInfer(self, request, context):
        call = call_of(context, request)
        context.set_trailing_metadata(((REQUEST_ID_HEADER, call.request_id),))
        try:
            self.access.check(context.invocation_metadata(), request.model_name)
            return await self.forwarder.infer(request, call, context.invocation_metadata())
        except Exception as exc:
            await abort(context, exc)

    async def ModelStreamInfer(self, request_iterator, context):
        async def answer(request, call):
            self.access.check(context.invocation_metadata(), request.model_name)
            return await self.forwarder.infer(request, call, context.invocation_metadata())

        async for message in answer_stream(request_iterator, lambda request: call_of(context, request, streamed=True),
                                           answer):
            yield message

    async def _authorize(self, context, model: str) -> None:
        try:
            self.access.check(context.invocation_metadata(), model)
        except MeshError as exc:
            await abort(context, exc)
