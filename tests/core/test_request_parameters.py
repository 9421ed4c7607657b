"""Request parameters: the timeout becomes a deadline, the rest are named, shared memory is refused."""

import time

import grpc
import pytest
from tritonclient.grpc import service_pb2 as pb

from meshserve.core.errors import InvalidInput, MeshError
from meshserve.core.mesh_protocol import CallInfo
from meshserve.core.request_parameters import (
    check_shared_memory, ignored_parameters, stream_answer, stream_error, with_request_timeout)


def test_the_timeout_brings_the_deadline_forward_but_never_back():
    request = pb.ModelInferRequest()
    request.parameters["timeout"].int64_param = 2_000_000  # 2 s in microseconds
    call = with_request_timeout(CallInfo(request_id="r"), request)
    assert 1.5 < call.remaining() <= 2.0
    sooner = CallInfo(request_id="r", deadline=time.monotonic() + 0.5)
    assert with_request_timeout(sooner, request) is sooner
    request.parameters["timeout"].int64_param = 0  # Triton's "none"
    assert with_request_timeout(CallInfo(request_id="r"), request).deadline is None


def test_a_timeout_that_is_not_whole_microseconds_is_refused():
    request = pb.ModelInferRequest()
    request.parameters["timeout"].double_param = 1.5
    with pytest.raises(InvalidInput, match="parameter 'timeout'"):
        with_request_timeout(CallInfo(request_id="r"), request)


def test_parameters_not_acted_on_are_named_sorted():
    request = pb.ModelInferRequest()
    request.parameters["sequence_id"].int64_param = 3
    request.parameters["timeout"].int64_param = 10
    request.parameters["priority"].uint64_param = 1
    request.parameters["triton_enable_empty_final_response"].bool_param = True
    output = request.outputs.add(name="scores")
    output.parameters["classification"].int64_param = 2
    output.parameters["binary_data"].bool_param = True
    assert ignored_parameters(request) == ["priority", "sequence_id", "scores.binary_data"]


def test_a_tensor_in_shared_memory_is_refused_as_unimplemented():
    request = pb.ModelInferRequest()
    request.inputs.add(name="x").parameters["shared_memory_region"].string_param = "input0"
    with pytest.raises(MeshError) as refused:
        check_shared_memory(request)
    assert refused.value.code == grpc.StatusCode.UNIMPLEMENTED and "input 'x'" in refused.value.message


def test_stream_answers_and_errors_carry_the_final_flag_and_the_request_id():
    request = pb.ModelInferRequest(model_name="m", model_version="2", id="abc")
    request.parameters["triton_enable_empty_final_response"].bool_param = True
    answer = stream_answer(request, pb.ModelInferResponse(id="abc"))
    assert answer.infer_response.parameters["triton_final_response"].bool_param
    error = stream_error(request, "abc", MeshError("input 'x': bad", grpc.StatusCode.INVALID_ARGUMENT))
    assert error.error_message == "input 'x': bad"
    assert (error.infer_response.id, error.infer_response.model_name, error.infer_response.model_version) == \
           ("abc", "m", "2")
    assert error.infer_response.parameters["triton_final_response"].bool_param
