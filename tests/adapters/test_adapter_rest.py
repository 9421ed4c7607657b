"""An adapter started with --rest-listen answers the REST binding itself, so Envoy's front can send
REST inferences straight to it: the router's answers, errors and status codes, the request id
echoed, the role Envoy stamped kept, every inference recorded once, JSON and binary tensors."""

from __future__ import annotations

import http.client
import json
import struct
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from sklearn.datasets import load_breast_cancer
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES, RunningProcess, start_adapter
from meshserve.core.rest_messages import metadata_json
from meshserve.sidecars.records.spool import read_frames, spool_files

ROWS = load_breast_cancer().data[200:216]
IRIS_INFER = "/v2/models/iris-species/infer"


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="module")
def adapters(records):
    """Both Python examples, each with gRPC and REST, recording into RECORDS."""
    started: list[RunningProcess] = []
    try:
        env = {"MESHSERVE_RECORDS_DIR": str(records)}
        yield {name: start_adapter(EXAMPLES / folder, env=env, rest=True, started=started)
               for name, folder in (("iris", "iris_species"), ("cancer", "breast_cancer"))}
    finally:
        for process in started:
            process.stop()


@pytest.fixture(scope="module")
def iris(adapters) -> str:
    return adapters["iris"].rest_address


def exchange(address: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    connection = http.client.HTTPConnection(address, timeout=60)
    try:
        connection.request(method, path, body, {"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def iris_body(rows: list[list[float]], **extra) -> bytes:
    return json.dumps({"inputs": [{"name": "measurements", "shape": [len(rows), 4], "datatype": "FP32",
                                   "data": rows}], **extra}).encode()


def recorded(records: Path, request_id: str) -> list[dict]:
    return [record for spool in spool_files(records / "spool") for _, record in read_frames(spool.path, 0)
            if record.get("kind") == "record" and record.get("request_id") == request_id]


def test_a_json_inference_gets_the_routers_answer_with_its_request_id(iris, records):
    status, headers, body = exchange(iris, "POST", IRIS_INFER, iris_body([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]),
                                     {"x-request-id": "order-42"})
    assert status == 200, body
    answer = json.loads(body)
    assert headers["content-type"].startswith("application/json") and headers["x-request-id"] == "order-42"
    assert (answer["model_name"], answer["model_version"], answer["id"]) == ("iris-species", "1", "order-42")
    assert answer["parameters"] == {"meshserve_role": "primary"}
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["species"] == {"name": "species", "datatype": "BYTES", "shape": [2], "data": ["setosa", "virginica"]}
    assert outputs["distance"]["datatype"] == "FP32" and len(outputs["distance"]["data"]) == 2
    [record] = recorded(records, "order-42")
    assert (record["role"], record["side"], record["model"], record["version"], record["code"]) == (
        "primary", "adapter", "iris-species", "1", "OK")


def test_the_request_id_is_the_header_else_the_bodys_else_a_new_one(iris, records):
    _, headers, body = exchange(iris, "POST", IRIS_INFER, iris_body([[5.1, 3.5, 1.4, 0.2]], id="from-body"),
                                {"x-request-id": "from-header"})
    assert json.loads(body)["id"] == headers["x-request-id"] == "from-header"
    _, headers, body = exchange(iris, "POST", IRIS_INFER, iris_body([[5.1, 3.5, 1.4, 0.2]], id="from-body"))
    assert json.loads(body)["id"] == headers["x-request-id"] == "from-body"
    _, headers, body = exchange(iris, "POST", IRIS_INFER, iris_body([[5.1, 3.5, 1.4, 0.2]]))
    new = json.loads(body)["id"]
    assert new and headers["x-request-id"] == new
    for request_id in ("from-header", "from-body", new):
        assert len(recorded(records, request_id)) == 1, request_id
    assert recorded(records, "from-body")[0]["role"] == "primary"


@pytest.mark.parametrize("sent, kept", [("canary", "canary"), ("shadow", "shadow"), ("boss", "primary")])
def test_the_role_envoy_stamps_is_answered_and_recorded(iris, records, sent, kept):
    request_id = f"role-{sent}"
    status, _, body = exchange(iris, "POST", IRIS_INFER, iris_body([[6.7, 3.0, 5.2, 2.3]]),
                               {"x-request-id": request_id, "x-meshserve-role": sent})
    assert status == 200, body
    assert json.loads(body)["parameters"] == {"meshserve_role": kept}
    [record] = recorded(records, request_id)
    assert record["role"] == kept and record["code"] == "OK"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_http_gets_the_grpc_answer_from_the_adapter(adapters, binary):
    cancer = adapters["cancer"]
    rest, grpc_client = triton_http.InferenceServerClient(cancer.rest_address), triton_grpc.InferenceServerClient(
        cancer.address)
    sent = triton_http.InferInput("features", list(ROWS.shape), "FP64")
    sent.set_data_from_numpy(ROWS, binary_data=binary)
    outputs = [triton_http.InferRequestedOutput(name, binary_data=binary) for name in ("label", "probabilities")]
    answer = rest.infer("breast-cancer", [sent], outputs=outputs, model_version="1",
                        headers={"x-request-id": f"cancer-{binary}"})
    reference = triton_grpc.InferInput("features", list(ROWS.shape), "FP64")
    reference.set_data_from_numpy(ROWS)
    expected = grpc_client.infer("breast-cancer", [reference], model_version="1")
    for name in ("label", "probabilities"):
        np.testing.assert_array_equal(answer.as_numpy(name), expected.as_numpy(name))
        assert answer.as_numpy(name).dtype == expected.as_numpy(name).dtype
    assert answer.get_response()["id"] == f"cancer-{binary}"
    assert answer.get_response()["parameters"] == {"meshserve_role": "primary"}


def test_binary_inputs_and_outputs_on_the_wire(iris, records):
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    header = json.dumps({"inputs": [{"name": "measurements", "shape": [2, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": rows.nbytes}}],
                         "outputs": [{"name": "species", "parameters": {"binary_data": True}}]}).encode()
    status, headers, body = exchange(iris, "POST", IRIS_INFER, header + rows.tobytes(), {
        "Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream",
        "x-request-id": "binary-wire"})
    assert status == 200, body
    assert headers["content-type"] == "application/octet-stream"
    length = int(headers["inference-header-content-length"])
    answer, raw = json.loads(body[:length]), body[length:]
    assert [o["name"] for o in answer["outputs"]] == ["species"]
    assert answer["outputs"][0]["parameters"] == {"binary_data_size": len(raw)}
    species, offset = [], 0
    while offset < len(raw):
        (size,) = struct.unpack_from("<I", raw, offset)
        species.append(raw[offset + 4:offset + 4 + size])
        offset += 4 + size
    assert species == [b"setosa", b"virginica"]
    assert len(recorded(records, "binary-wire")) == 1


def bad_iris(shape: list[int], data: list) -> bytes:
    return json.dumps({"inputs": [{"name": "measurements", "shape": shape, "datatype": "FP32", "data": data}]}).encode()


# A body that cannot be read is refused before the data plane, as the router refuses it, so only a
# readable one that does not fit the signature becomes a (refused) record.
@pytest.mark.parametrize("body, reason, records_made", [
    (bad_iris([2, 4], [5.1, 3.5, 1.4]), "input 'measurements': data holds 3 values but shape [2, 4] needs 8", 0),
    (bad_iris([1, 3], [1, 2, 3]), "input 'measurements': shape [1, 3] but the model takes [-1, 4]", 1),
    (bad_iris([1, 4], ["1", 2, 3, 4]), "input 'measurements': FP32 data must be numbers", 0),
    (b"not json", "not valid JSON", 0),
], ids=["count", "shape", "type", "json"])
def test_bad_inputs_get_400_naming_the_input(iris, records, body, reason, records_made, request):
    request_id = f"refused-{request.node.callspec.id}"
    status, headers, text = exchange(iris, "POST", IRIS_INFER, body, {"x-request-id": request_id})
    assert status == 400, text
    assert reason in json.loads(text)["error"]
    assert headers["x-request-id"] == request_id
    made = recorded(records, request_id)
    assert len(made) == records_made and all(r["code"] == "INVALID_ARGUMENT" for r in made)


def test_unknown_models_versions_and_routes_answer_json_errors(iris):
    status, headers, body = exchange(iris, "POST", "/v2/models/no-such-model/infer", iris_body([[1, 2, 3, 4]]),
                                     {"x-request-id": "lost"})
    assert status == 404 and "not no-such-model" in json.loads(body)["error"] and headers["x-request-id"] == "lost"
    status, _, body = exchange(iris, "POST", "/v2/models/iris-species/versions/9/infer", iris_body([[1, 2, 3, 4]]))
    assert status == 404 and "not iris-species version 9" in json.loads(body)["error"]
    status, _, body = exchange(iris, "GET", "/v2/models/no-such-model")
    assert status == 404 and "iris-species version 1" in json.loads(body)["error"]
    status, _, body = exchange(iris, "GET", IRIS_INFER)
    assert status == 405 and "Method Not Allowed" in json.loads(body)["error"]
    status, _, body = exchange(iris, "GET", "/v3/anything")
    assert status == 404 and "/v2" in json.loads(body)["error"]


def test_health_readiness_and_metadata_are_the_grpc_answers(adapters):
    cancer = adapters["cancer"]
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/breast-cancer/ready",
                 "/v2/models/breast-cancer/versions/1/ready"):
        status, _, body = exchange(cancer.rest_address, "GET", path)
        assert status == 200, (path, body)
    for path in ("/v2/models/breast-cancer/versions/7/ready", "/v2/models/no-such-model/ready"):
        status, _, body = exchange(cancer.rest_address, "GET", path)
        assert status == 400 and "is not ready" in json.loads(body)["error"], path
    with grpc.insecure_channel(cancer.address) as channel:
        expected = metadata_json(pb_grpc.GRPCInferenceServiceStub(channel).ModelMetadata(
            pb.ModelMetadataRequest(name="breast-cancer")))
    for path in ("/v2/models/breast-cancer", "/v2/models/breast-cancer/versions/1"):
        status, _, body = exchange(cancer.rest_address, "GET", path)
        assert status == 200 and json.loads(body) == expected, path
    assert expected["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 30]}]


def test_the_timeout_parameter_is_a_deadline_as_over_grpc(iris):
    status, headers, body = exchange(iris, "POST", IRIS_INFER, iris_body([[5.1, 3.5, 1.4, 0.2]],
                                                                         parameters={"timeout": 1}),
                                     {"x-request-id": "too-late"})
    assert status == 504 and "timeout" in json.loads(body)["error"] and headers["x-request-id"] == "too-late"
    status, _, body = exchange(iris, "POST", IRIS_INFER, iris_body([[5.1, 3.5, 1.4, 0.2]],
                                                                   parameters={"timeout": 30_000_000}))
    assert status == 200, body
