"""The router sets or removes every header of the mesh itself, whatever sits in front of it."""

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.slow


def iris_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris-species")
    request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32).tobytes())
    return request


@pytest.fixture(scope="module")
def direct_mesh(python_examples):
    from conftest import start_mesh

    process = start_mesh(python_examples, "--no-envoy")
    yield process
    process.stop()


def test_a_client_cannot_label_its_traffic_as_shadow_without_envoy(direct_mesh):
    forged = [("x-meshserve-role", "shadow"), ("x-meshserve-version", "9"), ("x-meshserve-model", "breast-cancer")]
    with grpc.insecure_channel(direct_mesh.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        answer = stub.ModelInfer(iris_request(), metadata=forged, timeout=30)
        streamed = list(stub.ModelStreamInfer(iter([iris_request()]), metadata=forged, timeout=30))
    assert answer.model_name == "iris-species"
    assert answer.parameters["meshserve_role"].string_param == "primary"
    assert streamed[0].error_message == ""
    assert streamed[0].infer_response.parameters["meshserve_role"].string_param == "primary"


def test_the_clients_request_id_and_other_headers_still_travel(direct_mesh):
    with grpc.insecure_channel(direct_mesh.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        answer, call = stub.ModelInfer.with_call(iris_request(), metadata=[("x-request-id", "client-7")], timeout=30)
    assert answer.id == "client-7"
    assert ("x-request-id", "client-7") in call.trailing_metadata()
