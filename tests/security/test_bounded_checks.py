"""Every check costs what the request really holds, before anything is allocated for it, and
quotes client-sent text by a bounded prefix. Each test here failed before the fix it names."""

import time
import tracemalloc

import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

from meshserve.adapters.tensor_codec import decode_tensor
from meshserve.core.errors import MESSAGE_LIMIT, InvalidInput, ModelNotFound, bounded, quoted
from meshserve.core.model_package import Signature
from meshserve.core.signature_check import check_request

TEXT = Signature.model_validate({
    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
    "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
})
TWO = Signature.model_validate({
    "inputs": [{"name": "a", "datatype": "FP32", "shape": [-1, 2]}, {"name": "b", "datatype": "FP32", "shape": [-1]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
})


def lying_bytes_request(claimed: int) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="text", datatype="BYTES", shape=[claimed])
    request.raw_input_contents.append(b"\x01\x00\x00\x00x" * 4)
    return request


def refusal(call) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("claimed", [2**27, 2**31])
def test_a_bytes_input_claiming_more_elements_than_its_bytes_hold_is_refused_without_allocating(claimed):
    request = lying_bytes_request(claimed)
    tracemalloc.start()
    try:
        first = refusal(lambda: check_request(request, TEXT))
        second = refusal(lambda: decode_tensor("text", "BYTES", [claimed], None, request.raw_input_contents[0]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "too few for" in first.message and "too few for" in second.message
    assert peak < 1024 * 1024, f"the refusal allocated {peak} bytes"


def test_typed_contents_beside_raw_contents_are_refused_not_silently_ignored():
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="b", datatype="FP32", shape=[1])
    tensor.contents.fp32_contents.append(7.0)
    request.raw_input_contents.append(np.float32(1).tobytes())
    with pytest.raises(InvalidInput, match="both typed contents and raw_input_contents"):
        decode_tensor("b", "FP32", [1], tensor.contents, request.raw_input_contents[0])


def test_inputs_with_different_row_counts_are_refused_at_the_check():
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="a", datatype="FP32", shape=[3, 2])
    request.inputs.add(name="b", datatype="FP32", shape=[2])
    request.raw_input_contents.extend([np.ones(6, np.float32).tobytes(), np.ones(2, np.float32).tobytes()])
    error = refusal(lambda: check_request(request, TWO))
    assert error.message == ("input 'b': has 2 rows but input 'a' has 3; send the same number of rows in every input")


def test_typed_contents_of_the_wrong_count_are_refused_by_the_router_check_too():
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="a", datatype="FP32", shape=[1, 2]).contents.fp32_contents.extend([1.0])
    request.inputs.add(name="b", datatype="FP32", shape=[1]).contents.fp32_contents.extend([1.0])
    assert "fp32_contents holds 1 values but shape [1, 2] needs 2" in refusal(lambda: check_request(request, TWO)).message


def test_forty_thousand_tiny_inputs_are_refused_in_linear_time():
    request = pb.ModelInferRequest(model_name="m")
    for i in range(40_000):
        request.inputs.add(name=f"x{i % 20_000}", datatype="FP32", shape=[1])
    start = time.perf_counter()
    refusal(lambda: check_request(request, TWO))
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("field", ["input name", "datatype"])
def test_a_60_kb_client_name_is_quoted_by_a_bounded_prefix(field):
    huge = "n" * 60_000
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name=huge if field == "input name" else "text",
                       datatype=huge if field == "datatype" else "BYTES", shape=[1])
    message = refusal(lambda: check_request(request, TEXT)).message
    assert len(message) < 400
    assert "(60000 characters)" in message


def test_quoting_shows_a_printable_prefix_and_the_full_length():
    assert quoted("iris") == "iris"
    assert quoted("a\nb\x00") == "a\\nb\\x00"
    assert quoted("x" * 100) == "x" * 64 + "... (100 characters)"


def test_every_status_message_is_capped_as_a_last_guard():
    assert len(bounded("y" * 100_000)) == MESSAGE_LIMIT
    assert bounded("short") == "short"


def test_an_unknown_60_kb_model_name_is_not_echoed_whole():
    from meshserve.spec.model_table import ModelTable

    with pytest.raises(ModelNotFound) as caught:
        ModelTable(models={}).model("m" * 60_000)
    assert len(caught.value.message) < 300


@pytest.mark.parametrize("sent", ["a\x11b", "x" * 60_000, "snow\u2603"])
def test_a_request_id_that_cannot_travel_as_a_header_is_replaced_not_an_internal_error(sent):
    from meshserve.core.mesh_protocol import request_id_of

    assert request_id_of([], sent) != sent
    assert request_id_of([("x-request-id", sent)], "") != sent
    assert request_id_of([], "order-17") == "order-17"


def test_an_output_requested_many_times_is_refused_not_encoded_many_times():
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="text", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"x")
    for _ in range(40_000):
        request.outputs.add(name="label")
    assert refusal(lambda: check_request(request, TEXT)).message == "requested output 'label': requested more than once"
