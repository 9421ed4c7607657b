"""The REST binding's bodies: JSON and binary tensors become the ModelInferRequest a gRPC client
would send, answers become the JSON (and binary parts) REST clients read, and every malformed
body is refused naming the input and the reason, before anything is allocated for its claims."""

import json
import struct

import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

from meshserve.core.errors import InvalidInput
from meshserve.router.rest.infer_body import parse_request, response_body
from meshserve.router.rest.message_json import metadata_json, to_json

LIMIT = 64 * 1024 * 1024


def parse(document, binary: bytes = b"", limit: int = LIMIT):
    header = json.dumps(document).encode() if not isinstance(document, bytes) else document
    return parse_request("m", "", header + binary, str(len(header)) if binary else None, limit)


def refusal(document, binary: bytes = b"", limit: int = LIMIT) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse(document, binary, limit)
    return caught.value.message


def tensor(name="x", shape=(2, 2), datatype="FP64", data=((1, 2), (3, 4)), **extra):
    return {"name": name, "shape": list(shape), "datatype": datatype,
            **({"data": [list(r) if isinstance(r, tuple) else r for r in data]} if data is not None else {}), **extra}


def test_nested_and_flat_json_data_become_the_same_raw_bytes():
    nested = parse({"inputs": [tensor()]}).request
    flat = parse({"inputs": [tensor(data=(1, 2, 3, 4))]}).request
    assert nested.raw_input_contents == flat.raw_input_contents == [np.array([1, 2, 3, 4], "<f8").tobytes()]
    assert (nested.model_name, list(nested.inputs[0].shape), nested.inputs[0].datatype) == ("m", [2, 2], "FP64")


def test_every_datatype_is_packed_as_the_protocol_packs_it():
    cases = {"BOOL": ([True, False], np.bool_), "INT8": ([-128, 127], "<i1"), "UINT16": ([0, 65535], "<u2"),
             "INT64": ([-(2 ** 63), 2 ** 63 - 1], "<i8"), "UINT64": ([2 ** 64 - 1, 0], "<u8"),
             "FP16": ([0.5, 1.5], "<f2"), "FP32": ([1, 2.25], "<f4")}
    for datatype, (values, dtype) in cases.items():
        request = parse({"inputs": [tensor(shape=[2], datatype=datatype, data=values)]}).request
        assert request.raw_input_contents[0] == np.array(values, dtype).tobytes(), datatype
    strings = parse({"inputs": [tensor(shape=[2], datatype="BYTES", data=["héllo", ""])]}).request
    assert strings.raw_input_contents[0] == struct.pack("<I", 6) + "héllo".encode() + struct.pack("<I", 0)


def test_binary_inputs_are_cut_from_the_bytes_after_the_json_in_input_order():
    first, second = np.arange(4, dtype="<f8").tobytes(), np.arange(3, dtype="<i4").tobytes()
    body = {"inputs": [tensor("a", [4], data=None, parameters={"binary_data_size": len(first)}),
                       tensor("b", [3], "INT32", data=(7, 8, 9)),
                       tensor("c", [3], "INT32", data=None, parameters={"binary_data_size": len(second)})]}
    request = parse(body, first + second).request
    assert list(request.raw_input_contents) == [first, np.array([7, 8, 9], "<i4").tobytes(), second]
    assert [dict(t.parameters) for t in request.inputs] == [{}, {}, {}]  # the binding's own parameters stay here


def test_parameters_travel_and_output_choices_are_kept_for_the_answer():
    inference = parse({"id": "r-1", "parameters": {"priority": 2, "binary_data_output": False, "note": "x"},
                       "inputs": [tensor()],
                       "outputs": [{"name": "y", "parameters": {"binary_data": True, "classification": 2}}]})
    request = inference.request
    assert request.id == "r-1"
    assert request.parameters["priority"].int64_param == 2 and request.parameters["note"].string_param == "x"
    assert "binary_data_output" not in request.parameters
    assert [o.name for o in request.outputs] == ["y"] and request.outputs[0].parameters["classification"].int64_param == 2
    assert inference.binary_outputs == {"y"} and not inference.all_binary


@pytest.mark.parametrize("document, reason", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[" * 100_000, "nests too deeply"),
    ({"inputs": "x"}, "field 'inputs'"),
    ({}, "field 'inputs': Field required"),
    ({"inputs": [tensor(shape=[2, -1])]}, "input 'x': shape[1]: Input should be greater than or equal to 0"),
    ({"inputs": [tensor(shape=[2, True])]}, "input 'x': shape[1]"),
    ({"inputs": [tensor(datatype="FLOAT")]}, "input 'x': datatype FLOAT is not one of the protocol's"),
    ({"inputs": [tensor(data=(1, 2, 3))]}, "input 'x': data holds 3 values but shape [2, 2] needs 4"),
    ({"inputs": [tensor(shape=[10 ** 12], data=(1,))]}, "data holds 1 values but shape [1000000000000] needs"),
    ({"inputs": [tensor(data=((1, 2), (3,)))]}, "input 'x': data is ragged"),
    ({"inputs": [tensor(data=(1, "2", 3, 4))]}, "must be numbers; it holds strings"),
    ({"inputs": [tensor(datatype="INT32", data=(1, 2.5, 3, 4))]}, "input 'x': INT32 data must be integers; it holds 2.5"),
    ({"inputs": [tensor(datatype="INT8", data=(1, 300, 3, 4))]}, "input 'x': value 300 does not fit INT8"),
    ({"inputs": [tensor(datatype="UINT8", data=(1, -1, 3, 4))]}, "value -1 does not fit UINT8"),
    ({"inputs": [tensor(datatype="INT64", data=(1, 2 ** 70, 3, 4))]}, "value 1180591620717411303424 does not fit INT64"),
    ({"inputs": [tensor(datatype="BOOL", data=(1, 0, 1, 0))]}, "must be true/false"),
    ({"inputs": [tensor(datatype="BYTES", data=("a", 1, "b", "c"))]}, "must be strings only"),
    ({"inputs": [tensor(data=(1, None, 3, 4))]}, "nulls"),
    ({"inputs": [tensor(data=None)]}, "input 'x': has no data"),
    ({"inputs": [tensor(datatype="BF16")]}, "datatype BF16 is not one of the protocol's"),
])
def test_malformed_bodies_are_refused_naming_the_input_and_the_reason(document, reason):
    assert reason in refusal(document)


def test_binary_sizes_that_disagree_with_the_body_are_refused():
    data = np.arange(4, dtype="<f8").tobytes()
    claims_more = {"inputs": [tensor("a", [4], data=None, parameters={"binary_data_size": 64})]}
    assert "binary_data_size is 64 but only 32 bytes" in refusal(claims_more, data)
    claims_less = {"inputs": [tensor("a", [2], data=None, parameters={"binary_data_size": 16})]}
    assert "16 of 32" in refusal(claims_less, data)
    both = {"inputs": [tensor("a", [4], data=(1, 2, 3, 4), parameters={"binary_data_size": 32})]}
    assert "both data and binary_data_size" in refusal(both, data)
    negative = {"inputs": [tensor("a", [4], data=None, parameters={"binary_data_size": -1})]}
    assert "must be a byte count" in refusal(negative, data)
    for header in ("abc", "0", "999999", "-3"):
        with pytest.raises(InvalidInput, match="Inference-Header-Content-Length"):
            parse_request("m", "", b"{}" + data, header, LIMIT)


def test_json_values_are_held_to_the_message_limit_as_raw_bytes():
    # 2 characters of JSON per value, 8 bytes each as FP64: the raw request would pass the limit.
    assert "MESHSERVE_MAX_MESSAGE_BYTES (1000 bytes)" in refusal(
        {"inputs": [tensor(shape=[200], data=[0] * 200)]}, limit=1000)


def test_answers_are_json_or_binary_as_each_output_was_asked_for():
    response = pb.ModelInferResponse(model_name="m", model_version="1", id="r-1")
    response.parameters["meshserve_role"].string_param = "primary"
    response.outputs.add(name="label", datatype="INT64", shape=[2])
    response.outputs.add(name="species", datatype="BYTES", shape=[2])
    labels = np.array([3, 4], "<i8").tobytes()
    species = struct.pack("<I", 6) + b"setosa" + struct.pack("<I", 9) + b"virginica"
    response.raw_output_contents.extend([labels, species])
    as_json = parse({"inputs": [tensor()]})
    body, header_length = response_body(response, as_json)
    assert header_length is None
    assert json.loads(body) == {"model_name": "m", "model_version": "1", "id": "r-1",
                                "parameters": {"meshserve_role": "primary"}, "outputs": [
                                    {"name": "label", "datatype": "INT64", "shape": [2], "data": [3, 4]},
                                    {"name": "species", "datatype": "BYTES", "shape": [2], "data": ["setosa", "virginica"]}]}
    binary = parse({"inputs": [tensor()], "outputs": [{"name": "species", "parameters": {"binary_data": True}},
                                                      {"name": "label"}]})
    body, header_length = response_body(response, binary)
    header = json.loads(body[:header_length])
    assert header["outputs"][1] == {"name": "species", "datatype": "BYTES", "shape": [2],
                                    "parameters": {"binary_data_size": len(species)}}
    assert "data" in header["outputs"][0] and body[header_length:] == species


def test_typed_contents_in_an_answer_read_like_raw_ones():
    response = pb.ModelInferResponse(model_name="m", model_version="1")
    response.outputs.add(name="p", datatype="FP32", shape=[2]).contents.fp32_contents.extend([0.5, 0.25])
    body, _ = response_body(response, parse({"inputs": [tensor()]}))
    assert json.loads(body)["outputs"][0]["data"] == [0.5, 0.25]
    body, length = response_body(response, parse({"parameters": {"binary_data_output": True}, "inputs": [tensor()]}))
    assert body[length:] == np.array([0.5, 0.25], "<f4").tobytes()


def test_metadata_and_config_keep_shapes_and_dims_as_numbers():
    metadata = pb.ModelMetadataResponse(name="m", versions=["1"], platform="p")
    metadata.inputs.add(name="x", datatype="FP64", shape=[-1, 30])
    assert metadata_json(metadata) == {"name": "m", "versions": ["1"], "platform": "p", "outputs": [],
                                       "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 30]}]}
    from tritonclient.grpc import model_config_pb2 as mc
    config = mc.ModelConfig(name="m", input=[mc.ModelInput(name="x", data_type=mc.TYPE_FP64, dims=[-1, 30])])
    assert to_json(config) == {"name": "m", "input": [{"name": "x", "data_type": "TYPE_FP64", "dims": [-1, 30]}]}
