"""The Triton extensions meshserve does not serve, answered UNIMPLEMENTED in one sentence.

gRPC's generated servicer answers a method nobody wrote by raising NotImplementedError, which
logs a traceback on every call and tells the client nothing useful. The router and the
adapters mix this class in instead: each of these methods aborts at once with UNIMPLEMENTED and
a sentence saying what to do instead, and nothing is logged.
"""

from __future__ import annotations

import grpc

SHARED_MEMORY = ("meshserve serves no {kind} shared memory: send tensor data in the request "
                 "(raw_input_contents), which every client supports")
TRACE = ("meshserve does not change tracing per call: tracing follows the OTEL_* environment variables "
         "(docs/observability.md)")
LOGGING = "meshserve does not change its logging per call: each process logs to its own output"
# The gRPC methods this answers, for reflection (grpc_server.py leaves them out of what it lists).
UNSERVED = ("SystemSharedMemoryStatus", "SystemSharedMemoryRegister", "SystemSharedMemoryUnregister",
            "CudaSharedMemoryStatus", "CudaSharedMemoryRegister", "CudaSharedMemoryUnregister",
            "TraceSetting", "LogSettings")


async def _refuse(context: grpc.aio.ServicerContext, sentence: str) -> None:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, sentence)


class UnservedMethods:
    """Mixed into a GRPCInferenceServiceServicer before the generated base class."""

    async def SystemSharedMemoryStatus(self, request, context):
        await _refuse(context, SHARED_MEMORY.format(kind="system"))

    async def SystemSharedMemoryRegister(self, request, context):
        await _refuse(context, SHARED_MEMORY.format(kind="system"))

    async def SystemSharedMemoryUnregister(self, request, context):
        await _refuse(context, SHARED_MEMORY.format(kind="system"))

    async def CudaSharedMemoryStatus(self, request, context):
        await _refuse(context, SHARED_MEMORY.format(kind="CUDA"))

    async def CudaSharedMemoryRegister(self, request, context):
        await _refuse(context, SHARED_MEMORY.format(kind="CUDA"))

    async def CudaSharedMemoryUnregister(self, request, context):
        await _refuse(context, SHARED_MEMORY.format(kind="CUDA"))

    async def TraceSetting(self, request, context):
        await _refuse(context, TRACE)

    async def LogSettings(self, request, context):
        await _refuse(context, LOGGING)
