"""What Triton, KServe and MLServer users expect of the gRPC protocol beyond inference, through a
real mesh (Envoy, router, adapters): model configuration, statistics, the repository index,
refused and unserved methods, classification, request parameters and streams."""

from __future__ import annotations

import queue
import shutil

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
import yaml
from sklearn.datasets import load_breast_cancer
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException

from conftest import EXAMPLES, start_mesh

BATCHED = "tumours-batched"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """breast-cancer and iris as bundled, a batching copy of breast-cancer whose probabilities name
    their classes (two replicas), and a broken package."""
    folder = tmp_path_factory.mktemp("protocol-models")
    for name in ("breast_cancer", "iris_species"):
        (folder / name).symlink_to(EXAMPLES / name, target_is_directory=True)
    batched = folder / "batched"
    shutil.copytree(EXAMPLES / "breast_cancer", batched)
    manifest = yaml.safe_load((batched / "model.yaml").read_text())
    manifest.update(name=BATCHED, batching={"max_batch_size": 16, "max_wait_us": 300})
    manifest.pop("baseline", None)
    manifest.pop("golden", None)
    (batched / "baseline.json").unlink(missing_ok=True)
    manifest["signature"]["outputs"][1]["features"] = ["malignant", "benign"]
    (batched / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (folder / "broken").mkdir()
    (folder / "broken" / "model.yaml").write_text("name: broken-model\nversion: '1'\nruntime: python\n")
    (folder / "meshserve.yaml").write_text(yaml.safe_dump(
        {"models": {BATCHED: {"variants": [{"version": "1", "weight": 100, "replicas": 2}]}}}))
    return folder


@pytest.fixture(scope="module")
def mesh(models):
    process = start_mesh(models)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(mesh):
    return triton.InferenceServerClient(mesh.address)


@pytest.fixture(scope="module")
def stub(mesh):
    with grpc.insecure_channel(mesh.address) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def rows(n: int) -> np.ndarray:
    return load_breast_cancer().data[:n]


def features(data: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput("features", list(data.shape), "FP64")
    tensor.set_data_from_numpy(data)
    return tensor


def test_model_config_describes_batching_as_triton_does(client):
    config = client.get_model_config(BATCHED).config
    assert config.max_batch_size == 16
    assert config.dynamic_batching.max_queue_delay_microseconds == 300
    assert [(i.name, list(i.dims)) for i in config.input] == [("features", [30])]
    assert [(o.name, list(o.dims), o.HasField("reshape")) for o in config.output] == [
        ("label", [1], True), ("probabilities", [2], False)]
    assert triton.model_config_pb2.DataType.Name(config.input[0].data_type) == "TYPE_FP64"
    plain = client.get_model_config("iris-species").config
    assert plain.max_batch_size == 1 and not plain.HasField("dynamic_batching")
    assert triton.model_config_pb2.DataType.Name(plain.output[0].data_type) == "TYPE_STRING"


def test_server_metadata_lists_the_extensions_served(client):
    extensions = client.get_server_metadata().extensions
    assert {"classification", "model_configuration", "model_repository", "statistics"} <= set(extensions)
    assert "system_shared_memory" not in extensions
    assert "binary_tensor_data" in extensions  # the front serves REST too


def test_classification_answers_top_classes_with_labels(client):
    result = client.infer(BATCHED, [features(rows(3))],
                          outputs=[triton.InferRequestedOutput("probabilities", class_count=1),
                                   triton.InferRequestedOutput("label")])
    top = result.as_numpy("probabilities")
    assert top.shape == (3, 1)
    labels = result.as_numpy("label")
    for (entry,), label in zip(top, labels):
        score, index, name = entry.decode().split(":")
        assert int(index) == label and name == ["malignant", "benign"][label] and 0.5 <= float(score) <= 1
    unlabelled = client.infer("breast-cancer", [features(rows(2))],
                              outputs=[triton.InferRequestedOutput("probabilities", class_count=5)])
    assert unlabelled.as_numpy("probabilities").shape == (2, 2)  # capped at the two classes there are
    assert all(len(e.decode().split(":")) == 2 for e in unlabelled.as_numpy("probabilities").ravel())


def test_classifying_a_bytes_output_is_refused_naming_it(client):
    iris = triton.InferInput("measurements", [1, 4], "FP32")
    iris.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32))
    with pytest.raises(InferenceServerException) as refused:
        client.infer("iris-species", [iris], outputs=[triton.InferRequestedOutput("species", class_count=2)])
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "'species'" in refused.value.message() and "BYTES" in refused.value.message()


def test_parameters_meshserve_does_not_act_on_are_named_in_the_answer(client):
    result = client.infer("breast-cancer", [features(rows(1))], sequence_id=7, priority=2,
                          parameters={"custom": "x"})
    ignored = result.get_response().parameters["ignored_parameters"].string_param.split(",")
    assert set(ignored) == {"sequence_id", "sequence_start", "sequence_end", "priority", "custom"}
    plain = client.infer("breast-cancer", [features(rows(1))])
    assert "ignored_parameters" not in plain.get_response().parameters


def test_the_timeout_parameter_is_a_server_side_deadline(client):
    assert client.infer("breast-cancer", [features(rows(1))], timeout=10_000_000).as_numpy("label") is not None
    with pytest.raises(InferenceServerException) as late:
        client.infer("breast-cancer", [features(rows(1))], timeout=1)  # one microsecond
    assert late.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    assert "timeout" in late.value.message()


def test_statistics_sum_every_replica_in_triton_terms(client):
    before = client.get_inference_statistics(BATCHED, "1").model_stats[0]
    for _ in range(6):
        client.infer(BATCHED, [features(rows(2))])
    with pytest.raises(InferenceServerException):
        client.infer(BATCHED, [features(rows(2)[:, :5])])  # refused at the router: never reaches an adapter
    stats = client.get_inference_statistics(BATCHED, "1").model_stats[0]
    assert (stats.name, stats.version) == (BATCHED, "1")
    assert stats.inference_count - before.inference_count == 12  # rows, as Triton counts them
    assert stats.inference_stats.success.count - before.inference_stats.success.count == 6
    assert stats.execution_count > before.execution_count
    for stage in ("success", "compute_input", "compute_infer", "compute_output"):
        assert getattr(stats.inference_stats, stage).ns > getattr(before.inference_stats, stage).ns, stage
    assert stats.last_inference > 0
    everything = client.get_inference_statistics().model_stats
    assert {(s.name, s.version) for s in everything} == {("breast-cancer", "1"), ("iris-species", "1"), (BATCHED, "1")}
    with pytest.raises(InferenceServerException) as missing:
        client.get_inference_statistics("breast-cancer", "9")
    assert missing.value.status() == "StatusCode.NOT_FOUND"


def test_repository_index_shows_ready_models_and_broken_packages(client):
    index = {(m["name"], m.get("version", "")): m for m in client.get_model_repository_index(as_json=True)["models"]}
    assert index[("breast-cancer", "1")]["state"] == "READY"
    assert index[(BATCHED, "1")]["state"] == "READY"
    broken = index[("broken-model", "")]
    assert broken["state"] == "UNAVAILABLE" and "signature" in broken["reason"]


def test_load_and_unload_are_refused_with_what_to_do_instead(client):
    for call in (client.load_model, client.unload_model):
        with pytest.raises(InferenceServerException) as refused:
            call("breast-cancer")
        assert refused.value.status() == "StatusCode.FAILED_PRECONDITION"
        assert "meshserve rollout" in refused.value.message()


@pytest.mark.parametrize("call", ["get_system_shared_memory_status", "get_cuda_shared_memory_status",
                                  "get_trace_settings", "get_log_settings"])
def test_unserved_methods_answer_unimplemented_in_one_sentence(client, call):
    with pytest.raises(InferenceServerException) as refused:
        getattr(client, call)()
    assert refused.value.status() == "StatusCode.UNIMPLEMENTED"
    assert "meshserve" in refused.value.message() and "Method not implemented" not in refused.value.message()


def test_a_stream_error_names_the_request_that_failed(stub):
    good = pb.ModelInferRequest(model_name="breast-cancer", id="good-1", raw_input_contents=[rows(1).tobytes()])
    good.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    good.parameters["triton_enable_empty_final_response"].bool_param = True
    bad = pb.ModelInferRequest(model_name="breast-cancer", id="bad-2", raw_input_contents=[b"\0" * 8])
    bad.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    answers = list(stub.ModelStreamInfer(iter([good, bad]), timeout=30))
    assert answers[0].error_message == "" and answers[0].infer_response.id == "good-1"
    assert answers[0].infer_response.parameters["triton_final_response"].bool_param
    assert "features" in answers[1].error_message and answers[1].infer_response.id == "bad-2"


def test_tritonclient_streams_see_the_final_response_flag(client):
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        client.async_stream_infer("breast-cancer", [features(rows(1))], request_id="s-1",
                                  enable_empty_final_response=True)
        result, error = answers.get(timeout=30)
    finally:
        client.stop_stream()
    assert error is None and result.get_response().id == "s-1"
    assert result.get_response().parameters["triton_final_response"].bool_param


def test_a_tensor_in_shared_memory_is_refused_as_unimplemented(client):
    tensor = features(rows(1))
    tensor.set_shared_memory("input0", 240)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("breast-cancer", [tensor])
    assert refused.value.status() == "StatusCode.UNIMPLEMENTED" and "shared memory" in refused.value.message()


def test_a_lone_adapter_answers_the_same_extensions(adapter_factory):
    """Called directly (no router), an adapter keeps the timeout, counts, and refuses what it does not serve."""
    adapter = adapter_factory(EXAMPLES / "breast_cancer")
    direct = triton.InferenceServerClient(adapter.address)
    direct.infer("breast-cancer", [features(rows(3))])
    with pytest.raises(InferenceServerException) as late:
        direct.infer("breast-cancer", [features(rows(1))], timeout=1)
    assert late.value.status() == "StatusCode.DEADLINE_EXCEEDED" and "timeout" in late.value.message()
    stats = direct.get_inference_statistics("breast-cancer").model_stats[0]
    assert stats.inference_count == 3 and stats.inference_stats.success.count == 1
    assert "statistics" in direct.get_server_metadata().extensions
    for call in (direct.get_system_shared_memory_status, direct.get_model_repository_index):
        with pytest.raises(InferenceServerException) as refused:
            call()
        assert refused.value.status() == "StatusCode.UNIMPLEMENTED"
    adapter.stop()
    assert "Traceback" not in adapter.output


def test_reflection_lists_what_is_served_and_nothing_unserved(mesh):
    # What grpcurl's `list` and `describe` read; the router sits behind Envoy's front like any client.
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(mesh.address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert "inference.GRPCInferenceService" in database.get_services()
        service = DescriptorPool(database).FindServiceByName("inference.GRPCInferenceService")
        methods = {m.name for m in service.methods}
    assert {"ModelInfer", "ModelConfig", "ModelStatistics", "RepositoryIndex"} <= methods
    assert not methods & {"SystemSharedMemoryRegister", "CudaSharedMemoryStatus", "TraceSetting", "LogSettings"}


def test_no_traceback_reaches_the_log(mesh):
    assert "Traceback" not in mesh.output and "NotImplementedError" not in mesh.output
