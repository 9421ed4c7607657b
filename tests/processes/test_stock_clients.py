"""Stock Open Inference Protocol clients call meshserve unchanged and get the model's answers."""

import grpc
import joblib
import numpy as np
import pytest
import tritonclient.grpc as triton
from sklearn.datasets import load_breast_cancer
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES


@pytest.fixture(scope="module")
def client(python_mesh):
    return triton.InferenceServerClient(python_mesh.address)


@pytest.fixture(scope="module")
def stub(python_mesh):
    with grpc.insecure_channel(python_mesh.address) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def features_input(rows: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput("features", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    return tensor


def test_health_and_server_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("breast-cancer")
    assert client.is_model_ready("breast-cancer", "1")
    assert not client.is_model_ready("breast-cancer", "7")
    assert not client.is_model_ready("no-such-model")
    assert client.get_server_metadata().name == "meshserve"


def test_model_metadata_comes_from_the_manifest(client):
    metadata = client.get_model_metadata("breast-cancer")
    assert metadata.name == "breast-cancer" and list(metadata.versions) == ["1"]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("features", "FP64", [-1, 30])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [
        ("label", "INT64", [-1]), ("probabilities", "FP64", [-1, 2])]


def test_tritonclient_gets_what_scikit_learn_predicts(client):
    rows = load_breast_cancer().data[100:164]
    model = joblib.load(EXAMPLES / "breast_cancer" / "model.joblib")
    result = client.infer("breast-cancer", [features_input(rows)])
    np.testing.assert_array_equal(result.as_numpy("label"), model.predict(rows))
    np.testing.assert_allclose(result.as_numpy("probabilities"), model.predict_proba(rows), rtol=0, atol=0)
    assert result.get_response().model_version == "1"


def test_requested_outputs_are_honoured(client):
    rows = load_breast_cancer().data[:2]
    result = client.infer("breast-cancer", [features_input(rows)],
                          outputs=[triton.InferRequestedOutput("probabilities")])
    assert [o.name for o in result.get_response().outputs] == ["probabilities"]
    assert result.as_numpy("label") is None


def test_bytes_outputs_reach_the_client(client):
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    tensor = triton.InferInput("measurements", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    result = client.infer("iris-species", [tensor])
    assert result.as_numpy("species").tolist() == [b"setosa", b"virginica"]


def test_the_clients_request_id_is_kept_and_returned_in_id_and_trailers(stub):
    rows = load_breast_cancer().data[:1]
    request = pb.ModelInferRequest(model_name="breast-cancer", raw_input_contents=[rows.tobytes()])
    request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    response, call = stub.ModelInfer.with_call(request, metadata=[("x-request-id", "order-42")])
    assert response.id == "order-42"
    assert ("x-request-id", "order-42") in call.trailing_metadata()


def test_a_request_id_is_assigned_when_the_client_sends_none(stub):
    request = pb.ModelInferRequest(model_name="breast-cancer",
                                   raw_input_contents=[load_breast_cancer().data[:1].tobytes()])
    request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    first, call = stub.ModelInfer.with_call(request)
    second = stub.ModelInfer(request)
    assert len(first.id) >= 16 and first.id != second.id
    assert ("x-request-id", first.id) in call.trailing_metadata()


def test_typed_contents_get_typed_answers(stub):
    """A client without raw support (grpcurl, JSON-minded stubs) sends and reads typed contents."""
    request = pb.ModelInferRequest(model_name="iris-species")
    tensor = request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
    tensor.contents.fp32_contents.extend([5.1, 3.5, 1.4, 0.2])
    response = stub.ModelInfer(request)
    assert not response.raw_output_contents
    assert list(response.outputs[0].contents.bytes_contents) == [b"setosa"]


def test_streaming_inference_answers_each_request_in_turn(stub):
    rows = load_breast_cancer().data[:3]

    def requests():
        for i in range(3):
            request = pb.ModelInferRequest(model_name="breast-cancer", id=f"s{i}",
                                           raw_input_contents=[rows[i:i + 1].tobytes()])
            request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
            yield request
        bad = pb.ModelInferRequest(model_name="breast-cancer", id="bad")
        bad.inputs.add(name="features", datatype="FP32", shape=[1, 30])
        yield bad

    answers = list(stub.ModelStreamInfer(requests()))
    assert [a.infer_response.id for a in answers[:3]] == ["s0", "s1", "s2"]
    assert "datatype FP32 but the model takes FP64" in answers[3].error_message


def test_reflection_and_health_are_served(python_mesh):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(python_mesh.address) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        answers = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        services = {s.name for a in answers for s in a.list_services_response.service}
    assert {"inference.GRPCInferenceService", "meshserve.v1.Control"} <= services


def test_the_control_api_lists_models_and_their_signatures(python_mesh):
    from meshserve.v1 import control_pb2, control_pb2_grpc

    with grpc.insecure_channel(python_mesh.address) as channel:
        control = control_pb2_grpc.ControlStub(channel)
        listed = control.ListModels(control_pb2.ListModelsRequest())
        model = control.GetModel(control_pb2.GetModelRequest(name="breast-cancer"))
        with pytest.raises(grpc.RpcError) as missing:
            control.GetModel(control_pb2.GetModelRequest(name="nope"))
    assert {m.name for m in listed.models} == {"breast-cancer", "iris-species"}
    assert model.versions[0].ready and model.versions[0].runtime == "python"
    assert model.versions[0].inputs[0].features[0] == "mean radius"
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_answers_say_which_traffic_role_they_served(stub):
    request = pb.ModelInferRequest(model_name="breast-cancer",
                                   raw_input_contents=[load_breast_cancer().data[:1].tobytes()])
    request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    assert stub.ModelInfer(request).parameters["meshserve_role"].string_param == "primary"


def test_an_adapter_knows_a_mirrored_request_is_a_shadow(adapter_factory):
    adapter = adapter_factory(EXAMPLES / "iris_species")
    request = pb.ModelInferRequest(model_name="iris-species", raw_input_contents=[np.ones((1, 4), np.float32).tobytes()])
    request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
    with grpc.insecure_channel(adapter.address) as channel:
        direct = pb_grpc.GRPCInferenceServiceStub(channel)
        shadow = direct.ModelInfer(request, metadata=[("x-meshserve-role", "shadow")])
        forged = direct.ModelInfer(request, metadata=[("x-meshserve-role", "admin")])
    assert shadow.parameters["meshserve_role"].string_param == "shadow"
    assert forged.parameters["meshserve_role"].string_param == "primary"


def test_tritons_own_model_config_call_describes_the_model(client):
    """Triton's tools (perf_analyzer, model analyzer) ask for the model config first."""
    config = client.get_model_config("iris-species").config
    # It takes rows along a leading -1: a batch dimension, which Triton leaves out of dims.
    assert config.name == "iris-species" and config.max_batch_size == 1
    assert [(i.name, list(i.dims)) for i in config.input] == [("measurements", [4])]
    assert [o.name for o in config.output] == ["species", "distance"]
    from tritonclient.grpc import model_config_pb2

    assert config.output[0].data_type == model_config_pb2.TYPE_STRING
    with pytest.raises(Exception, match="not served here"):
        client.get_model_config("nope")
