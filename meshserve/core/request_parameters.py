"""What meshserve does with an inference request's `parameters`.

Honoured: `timeout` (microseconds, as in Triton) becomes a server-side deadline, the earlier of
it and the client's own; `triton_enable_empty_final_response` marks stream answers final
(`triton_final_response`); an output's `classification` (core/classification.py). Every other
parameter reaches the adapter unchanged but is acted on by no runtime, and the answer names it
in its `ignored_parameters` parameter (comma-separated; an output's as `OUTPUT.PARAMETER`), so
nothing is dropped silently: `sequence_id`, `sequence_start`, `sequence_end` and `priority`
among them. Shared memory is not served: an input or output naming a region is refused with
UNIMPLEMENTED.
"""

from __future__ import annotations

import dataclasses
import time

import grpc

from meshserve.core.classification import CLASSIFICATION_PARAMETERS
from tritonclient.grpc import service_pb2 as pb

from meshserve.core.errors import InvalidInput, MeshError, bounded, quoted
from meshserve.core.mesh_protocol import CallInfo

TIMEOUT = "timeout"
ENABLE_FINAL_RESPONSE = "triton_enable_empty_final_response"
FINAL_RESPONSE = "triton_final_response"
IGNORED_PARAMETERS = "ignored_parameters"
HONOURED = (TIMEOUT, ENABLE_FINAL_RESPONSE)
SHARED_MEMORY = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")


def request_timeout_s(request) -> float | None:
    """The request's `timeout` parameter in seconds (None when absent or 0, as in Triton)."""
    if TIMEOUT not in request.parameters:
        return None
    parameter = request.parameters[TIMEOUT]
    kind = parameter.WhichOneof("parameter_choice")
    if kind not in ("int64_param", "uint64_param") or getattr(parameter, kind) < 0:
        raise InvalidInput(TIMEOUT, "must be a whole number of microseconds (0 or more)", kind="parameter")
    value = getattr(parameter, kind)
    return value / 1e6 if value else None


def with_request_timeout(call: CallInfo, request) -> CallInfo:
    """CALL with its deadline brought forward to the request's `timeout` parameter, if earlier."""
    timeout = request_timeout_s(request)
    if timeout is None:
        return call
    deadline = time.monotonic() + timeout
    if call.deadline is not None and call.deadline <= deadline:
        return call
    return dataclasses.replace(call, deadline=deadline)


def check_shared_memory(request) -> None:
    """Refuse a request whose tensors live in shared memory: meshserve registers no regions."""
    for kind, tensors in (("input", request.inputs), ("requested output", request.outputs)):
        for tensor in tensors:
            if any(key in tensor.parameters for key in SHARED_MEMORY):
                raise MeshError(f"{kind} '{quoted(tensor.name)}' names a shared-memory region, but meshserve "
                                "serves no shared memory; send the tensor's data in the request",
                                grpc.StatusCode.UNIMPLEMENTED)


def ignored_parameters(request) -> list[str]:
    """The request's parameters meshserve does not act on, sorted (a parameter map has no order),
    then each requested output's."""
    ignored = sorted(key for key in request.parameters if key not in HONOURED)
    for output in request.outputs:
        ignored += sorted(f"{output.name}.{key}" for key in output.parameters if key not in CLASSIFICATION_PARAMETERS)
    return ignored


def final_response_wanted(request) -> bool:
    return ENABLE_FINAL_RESPONSE in request.parameters and request.parameters[ENABLE_FINAL_RESPONSE].bool_param


def stream_answer(request, response) -> pb.ModelStreamInferResponse:
    """A stream's answer to REQUEST, marked final when the client asked (Triton's decoupled flag:
    meshserve answers each request once, so its one answer is also its last)."""
    if final_response_wanted(request):
        response.parameters[FINAL_RESPONSE].bool_param = True
    return pb.ModelStreamInferResponse(infer_response=response)


def stream_error(request, request_id: str, exc: MeshError) -> pb.ModelStreamInferResponse:
    """A stream's error, as Triton sends one: the message, and a response naming the request that failed."""
    response = pb.ModelInferResponse(model_name=request.model_name, model_version=request.model_version, id=request_id)
    if final_response_wanted(request):
        response.parameters[FINAL_RESPONSE].bool_param = True
    return pb.ModelStreamInferResponse(error_message=bounded(exc.message), infer_response=response)
