"""Bad requests get a clear status naming the input and the reason, and the mesh keeps serving."""

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def stub(python_mesh):
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(python_mesh.address, options=options) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def iris_request(rows=1, datatype="FP32", shape=None, name="measurements", raw=None, **fields):
    request = pb.ModelInferRequest(**{"model_name": "iris-species", **fields})
    request.inputs.add(name=name, datatype=datatype, shape=shape or [rows, 4])
    request.raw_input_contents.append(raw if raw is not None else np.ones((rows, 4), np.float32).tobytes())
    return request


def status_of(stub, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, timeout=30)
    return caught.value.code(), caught.value.details()


def extra_input():
    request = iris_request()
    request.inputs.add(name="colour", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(np.ones(4, np.float32).tobytes())
    return request


def missing_input():
    request = pb.ModelInferRequest(model_name="iris-species")
    return request


CASES = {
    "unknown model": (lambda: iris_request(model_name="nope"), grpc.StatusCode.NOT_FOUND,
                      "model 'nope' is not served here; models served: breast-cancer, iris-species"),
    "unknown version": (lambda: iris_request(model_version="9"), grpc.StatusCode.NOT_FOUND,
                        "model 'iris-species' has no version '9'; versions served: 1"),
    "wrong datatype": (lambda: iris_request(datatype="FP64", raw=np.ones(4).tobytes()), grpc.StatusCode.INVALID_ARGUMENT,
                       "input 'measurements': datatype FP64 but the model takes FP32"),
    "wrong shape": (lambda: iris_request(shape=[1, 3], raw=np.ones(3, np.float32).tobytes()),
                    grpc.StatusCode.INVALID_ARGUMENT, "input 'measurements': shape [1, 3] but the model takes [-1, 4]"),
    "missing input": (missing_input, grpc.StatusCode.INVALID_ARGUMENT,
                      "input 'measurements': missing; this model needs FP32 [-1, 4]"),
    "extra input": (extra_input, grpc.StatusCode.INVALID_ARGUMENT, "input 'colour': not an input of this model"),
    "truncated raw bytes": (lambda: iris_request(rows=2, raw=np.ones(7, np.float32).tobytes()),
                            grpc.StatusCode.INVALID_ARGUMENT,
                            "input 'measurements': raw contents hold 28 bytes but shape [2, 4] of FP32 needs 32"),
    "unknown requested output": (lambda: iris_request(outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="x")]),
                                 grpc.StatusCode.INVALID_ARGUMENT, "requested output 'x': no such output"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_request_gets_a_clear_status_and_the_mesh_keeps_serving(stub, case):
    make, code, message = CASES[case]
    got_code, details = status_of(stub, make())
    assert got_code == code
    assert message in details
    assert stub.ModelInfer(iris_request(), timeout=30).outputs[0].name == "species"


def test_a_100_mb_request_above_the_limit_is_refused_and_serving_goes_on(python_mesh, stub):
    rows = (100 * 2**20) // (4 * 4)
    code, details = status_of(stub, iris_request(rows=rows))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than this mesh's limit of" in details
    client = triton.InferenceServerClient(python_mesh.address)
    assert client.is_model_ready("iris-species")
    assert stub.ModelInfer(iris_request(), timeout=30).outputs[0].name == "species"


def test_tritonclient_sees_the_reason_too(python_mesh):
    client = triton.InferenceServerClient(python_mesh.address)
    tensor = triton.InferInput("measurements", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.ones((1, 4)))
    with pytest.raises(InferenceServerException, match="datatype FP64 but the model takes FP32"):
        client.infer("iris-species", [tensor])


GRPC = {"content-type": "application/grpc", "te": "trailers"}


def frame(message: bytes, flag: int = 0, claimed: int | None = None) -> bytes:
    """One gRPC frame: the compressed flag, a big-endian length, the message."""
    return bytes([flag]) + (len(message) if claimed is None else claimed).to_bytes(4, "big") + message


@pytest.mark.parametrize("case, body, code, reason", [
    ("no message at all", b"", 3, "carries no ModelInferRequest"),
    ("a frame cut short", frame(iris_request().SerializeToString(), claimed=10_000)[:200], 3, "a truncated message"),
    ("two messages on a unary call", frame(b"") + frame(b""), 3, "more than one"),
    ("not a protobuf message", frame(b"\xff\xff\xff"), 3, "not a valid ModelInferRequest"),
    ("a compressed message", frame(b"\x1f\x8b\x08\x00", flag=1), 12, "compressed messages are not accepted"),
    ("no model named", frame(pb.ModelInferRequest(id="x").SerializeToString()), 3, "model_name is empty"),
])
def test_the_front_answers_a_body_it_cannot_route_at_once_with_the_reason(python_mesh, case, body, code, reason):
    """Envoy reads the model from the body to route it; a body it cannot read is answered there,
    in milliseconds, with the gRPC status and why, never a hang or a bare HTTP error."""
    import http.client
    import time
    import urllib.parse

    host, port = python_mesh.address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    started = time.monotonic()
    connection.request("POST", "/inference.GRPCInferenceService/ModelInfer", body=body, headers=GRPC)
    answer = connection.getresponse()
    answer.read()
    elapsed = time.monotonic() - started
    connection.close()
    assert answer.status == 200 and answer.getheader("grpc-status") == str(code), (case, answer.getheaders())
    assert reason in urllib.parse.unquote(answer.getheader("grpc-message") or ""), case
    assert elapsed < 1.0, f"{case}: answered after {elapsed:.2f} s"
