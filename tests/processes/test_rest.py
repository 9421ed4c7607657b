"""The Open Inference Protocol over HTTP/REST on the mesh's front address: curl, Triton's HTTP
client, the KServe REST client and perf_analyzer get the answers gRPC clients get, through the
same checks, request ids and records; bad bodies get 400 naming the reason."""

from __future__ import annotations

import http.client
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import textwrap
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from sklearn.datasets import load_breast_cancer

import perf_analyzer
from conftest import EXAMPLES, meshserve_argv

ROWS = load_breast_cancer().data[200:216]


@pytest.fixture(scope="module")
def front(python_mesh) -> str:
    return python_mesh.address


def post(address: str, path: str, body: bytes, headers: dict[str, str] | None = None):
    connection = http.client.HTTPConnection(address, timeout=60)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def get(address: str, path: str):
    connection = http.client.HTTPConnection(address, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def iris_body(rows: list[list[float]], **extra) -> bytes:
    return json.dumps({"inputs": [{"name": "measurements", "shape": [len(rows), 4], "datatype": "FP32",
                                   "data": rows}], **extra}).encode()


def curl(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (apt-get install curl)")
    return subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=60)


def test_curl_reads_health_and_scores_json_on_the_grpc_address(front):
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/iris-species/ready"):
        assert curl(f"http://{front}{path}").stdout.endswith("\n200"), path
    answer = curl("-X", "POST", f"http://{front}/v2/models/iris-species/infer", "-H", "Content-Type: application/json",
                  "-d", iris_body([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]).decode())
    body, code = answer.stdout.rsplit("\n", 1)
    assert code == "200", body
    outputs = {o["name"]: o for o in json.loads(body)["outputs"]}
    assert outputs["species"] == {"name": "species", "datatype": "BYTES", "shape": [2], "data": ["setosa", "virginica"]}
    assert outputs["distance"]["datatype"] == "FP32" and len(outputs["distance"]["data"]) == 2
    # gRPC keeps working on the same address: Envoy tells them apart by content type.
    assert triton_grpc.InferenceServerClient(front).is_server_ready()


def test_server_metadata_model_metadata_and_config_match_the_grpc_answers(front):
    rest, grpc_client = triton_http.InferenceServerClient(front), triton_grpc.InferenceServerClient(front)
    assert rest.is_server_live() and rest.is_server_ready() and rest.is_model_ready("breast-cancer", "1")
    assert not rest.is_model_ready("breast-cancer", "7") and not rest.is_model_ready("no-such-model")
    server = rest.get_server_metadata()
    assert server["name"] == "meshserve" and "binary_tensor_data" in server["extensions"]
    expected = grpc_client.get_model_metadata("breast-cancer", as_json=True)
    metadata = rest.get_model_metadata("breast-cancer")
    for key in ("name", "versions", "platform"):
        assert metadata[key] == expected[key]
    for kind in ("inputs", "outputs"):
        assert [(t["name"], t["datatype"], t["shape"]) for t in metadata[kind]] == [
            (t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in expected[kind]]
    assert rest.get_model_metadata("breast-cancer", "1") == metadata
    config = rest.get_model_config("iris-species")
    # As Triton describes a model that takes a batch: dims without the batch dimension.
    assert config["max_batch_size"] == 1 and config["input"] == [
        {"name": "measurements", "data_type": "TYPE_FP32", "dims": [4]}]
    status, body = get(front, "/v2/models/no-such-model")
    assert status == 404 and "not served here" in json.loads(body)["error"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_http_gets_the_grpc_answer(front, binary):
    rest, grpc_client = triton_http.InferenceServerClient(front), triton_grpc.InferenceServerClient(front)
    sent = triton_http.InferInput("features", list(ROWS.shape), "FP64")
    sent.set_data_from_numpy(ROWS, binary_data=binary)
    outputs = [triton_http.InferRequestedOutput(name, binary_data=binary) for name in ("label", "probabilities")]
    answer = rest.infer("breast-cancer", [sent], outputs=outputs, model_version="1")
    reference = triton_grpc.InferInput("features", list(ROWS.shape), "FP64")
    reference.set_data_from_numpy(ROWS)
    expected = grpc_client.infer("breast-cancer", [reference], model_version="1")
    for name in ("label", "probabilities"):
        np.testing.assert_array_equal(answer.as_numpy(name), expected.as_numpy(name))
        assert answer.as_numpy(name).dtype == expected.as_numpy(name).dtype
    assert answer.get_response()["model_version"] == "1"
    assert answer.get_response()["parameters"] == {"meshserve_role": "primary"}


def test_bytes_outputs_come_as_json_strings_or_binary(front):
    rest = triton_http.InferenceServerClient(front)
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    sent = triton_http.InferInput("measurements", list(rows.shape), "FP32")
    sent.set_data_from_numpy(rows, binary_data=True)
    as_json = rest.infer("iris-species", [sent], outputs=[triton_http.InferRequestedOutput("species", binary_data=False)])
    assert as_json.get_output("species")["data"] == ["setosa", "virginica"]
    as_binary = rest.infer("iris-species", [sent], outputs=[triton_http.InferRequestedOutput("species")])
    assert as_binary.as_numpy("species").tolist() == [b"setosa", b"virginica"]
    assert [o["name"] for o in as_binary.get_response()["outputs"]] == ["species"]  # requested outputs honoured


KSERVE_CLIENT = textwrap.dedent("""
    # The KServe SDK compiles its own inference protos: it cannot share a process with tritonclient.
    import asyncio, json, sys
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def main(url):
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=60))
        ready = [await client.is_server_live(url), await client.is_server_ready(url),
                 await client.is_model_ready(url, "iris-species")]
        tensor = InferInput("measurements", [2, 4], "FP32", data=[5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3])
        answer = await client.infer(url, InferRequest("iris-species", [tensor], request_id="kserve-1"),
                                    model_name="iris-species")
        await client.close()
        print(json.dumps({"ready": ready, "id": answer.id,
                          "outputs": {o.name: o.data for o in answer.outputs}}))

    asyncio.run(main(sys.argv[1]))
""")


def test_the_kserve_rest_client_scores_against_the_front(front, tmp_path):
    if importlib.util.find_spec("kserve") is None:
        pytest.skip("the kserve package is not installed (it is in the dev extra)")
    script = tmp_path / "kserve_client.py"
    script.write_text(KSERVE_CLIENT)
    result = subprocess.run([sys.executable, str(script), f"http://{front}"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["ready"] == [True, True, True] and answer["id"] == "kserve-1"
    assert answer["outputs"]["species"] == ["setosa", "virginica"]


def audit(front: str, request_id: str) -> list[dict]:
    result = subprocess.run(meshserve_argv("audit", request_id, "--json", "--address", front, "--wait", "15"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_request_ids_go_in_and_out_and_rest_inferences_are_recorded(front):
    status, headers, body = post(front, "/v2/models/iris-species/infer", iris_body([[5.0, 3.4, 1.5, 0.2]]),
                                 {"x-request-id": "rest-answered-1"})
    assert status == 200 and headers["x-request-id"] == "rest-answered-1"
    assert json.loads(body)["id"] == "rest-answered-1"
    [record] = audit(front, "rest-answered-1")
    assert (record["model"], record["version"], record["role"], record["code"]) == ("iris-species", "1", "primary", "OK")
    # The request's own id serves when no header is sent; a refusal is recorded like gRPC's.
    status, headers, body = post(front, "/v2/models/iris-species/infer",
                                 json.dumps({"id": "rest-refused-1", "inputs": [{
                                     "name": "measurements", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
                                 ).encode())
    assert status == 400 and headers["x-request-id"] == "rest-refused-1"
    assert "input 'measurements': shape [1, 3]" in json.loads(body)["error"]
    [refused] = audit(front, "rest-refused-1")
    assert refused["code"] == "INVALID_ARGUMENT"


def adapter_requests(mesh, code: str) -> float:
    """meshserve_requests_total of the iris-species adapter with CODE, read from its /metrics: REST
    inferences go straight to it, as gRPC ones do."""
    from prometheus_client.parser import text_string_to_metric_families

    url = re.search(r"metrics meshserve-adapter model=iris-species version=1: (\S+)", mesh.output).group(1)
    with urllib.request.urlopen(url, timeout=10) as page:
        text = page.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "meshserve_requests_total" and sample.labels.get("model") == "iris-species"
               and sample.labels.get("code") == code)


def test_rest_inferences_are_counted_in_the_adapters_metrics_like_grpc_ones(python_mesh, front):
    answered, refused = adapter_requests(python_mesh, "OK"), adapter_requests(python_mesh, "INVALID_ARGUMENT")
    assert post(front, "/v2/models/iris-species/infer", iris_body([[5.0, 3.4, 1.5, 0.2]]))[0] == 200
    bad = json.dumps({"inputs": [{"name": "measurements", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]})
    assert post(front, "/v2/models/iris-species/infer", bad.encode())[0] == 400
    assert adapter_requests(python_mesh, "OK") == answered + 1
    assert adapter_requests(python_mesh, "INVALID_ARGUMENT") == refused + 1


def binary_request(values: np.ndarray, claimed: int, header_extra: int = 0) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [{"name": "measurements", "shape": list(values.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": claimed}}]}).encode()
    return header + values.tobytes(), {"Inference-Header-Content-Length": str(len(header) + header_extra),
                                       "Content-Type": "application/octet-stream"}


@pytest.mark.parametrize("body, headers, status, reason", [
    (b'{"inputs": [', {}, 400, "the request body is not valid JSON"),
    (b'{"inputs": [{"name": "measurements"}]}', {}, 400, "input 'measurements': shape: Field required"),
    (b'{"inputs": 5}', {}, 400, "field 'inputs': Input should be a valid list"),
    (b'[]', {}, 400, "must be a JSON object"),
    (json.dumps({"inputs": [{"name": "measurements", "shape": [2, 4], "datatype": "FP32",
                             "data": [1, 2, 3]}]}).encode(), {}, 400, "data holds 3 values but shape [2, 4] needs 8"),
    (json.dumps({"inputs": [{"name": "measurements", "shape": [1, 4], "datatype": "FP64",
                             "data": [1, 2, 3, 4]}]}).encode(), {}, 400, "datatype FP64 but the model takes FP32"),
    (json.dumps({"inputs": [{"name": "measurements", "shape": [1, 4], "datatype": "FP32",
                             "data": [1, "x", 3, 4]}]}).encode(), {}, 400, "FP32 data must be numbers"),
    (*binary_request(np.ones((1, 4), np.float32), 32), 400, "binary_data_size is 32 but only 16 bytes"),
    (*binary_request(np.ones((1, 4), np.float32), 8), 400, "8 of 16"),
    (*binary_request(np.ones((1, 4), np.float32), 16, header_extra=10 ** 6), 400, "Inference-Header-Content-Length"),
    (*binary_request(np.ones((1, 3), np.float32), 12), 400, "shape [1, 3] but the model takes [-1, 4]"),
])
def test_bad_bodies_get_400_naming_the_input_and_the_reason(front, body, headers, status, reason):
    answered, _, text = post(front, "/v2/models/iris-species/infer", body, headers)
    assert answered == status, text
    assert reason in json.loads(text)["error"]


def test_unknown_models_routes_and_methods_answer_json_errors(front):
    status, _, body = post(front, "/v2/models/no-such-model/infer", iris_body([[1, 2, 3, 4]]))
    assert status == 404 and "models served: breast-cancer, iris-species" in json.loads(body)["error"]
    status, _, body = post(front, "/v2/models/iris-species/versions/9/infer", iris_body([[1, 2, 3, 4]]))
    assert status == 404 and "version" in json.loads(body)["error"]
    status, body = get(front, "/v2/models/iris-species/infer")
    assert status == 405 and "Method Not Allowed" in json.loads(body)["error"]
    status, body = get(front, "/v3/anything")
    assert status == 404 and "/v2" in json.loads(body)["error"]


def test_a_body_above_the_message_limit_is_refused_before_it_is_read(front):
    limit = 64 * 1024 * 1024
    connection = http.client.HTTPConnection(front, timeout=60)
    try:
        connection.putrequest("POST", "/v2/models/iris-species/infer")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(limit + 1))
        connection.endheaders()
        connection.send(b"{" + b" " * 65536)  # the rest never comes: the answer must not wait for it
        response = connection.getresponse()
        status, body = response.status, response.read()
    finally:
        connection.close()
    assert status == 400 and "MESHSERVE_MAX_MESSAGE_BYTES" in json.loads(body)["error"]


def test_perf_analyzer_loads_the_mesh_over_http(front, tmp_path):
    if not perf_analyzer.installed():
        pytest.skip(perf_analyzer.MISSING)
    data = perf_analyzer.input_data(tmp_path / "iris.json",
                                    {"measurements": {"content": [5.1, 3.5, 1.4, 0.2], "shape": [4]}})
    result = perf_analyzer.run("-i", "http", "-m", "iris-species", "-u", front, "--input-data", str(data),
                               *perf_analyzer.QUICK, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"Concurrency: 1, throughput: [\d.]+ infer/sec", result.stdout), result.stdout[-3000:]


def test_without_envoy_rest_has_its_own_port_printed_at_start(mesh_factory, tmp_path):
    (tmp_path / "iris_species").symlink_to(EXAMPLES / "iris_species", target_is_directory=True)
    mesh = mesh_factory(tmp_path, "--no-envoy")
    match = re.search(r"HTTP/REST at (http://\S+)/v2", mesh.output)
    assert match, mesh.output
    address = match.group(1).removeprefix("http://")
    assert address != mesh.address
    status, _, body = post(address, "/v2/models/iris-species/infer", iris_body([[6.7, 3.0, 5.2, 2.3]]))
    assert status == 200 and json.loads(body)["outputs"][0]["data"] == ["virginica"]


def test_statistics_and_the_repository_index_over_rest_are_the_grpc_answers(front):
    rest, grpc_client = triton_http.InferenceServerClient(front), triton_grpc.InferenceServerClient(front)
    rows = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
    measurements = triton_http.InferInput("measurements", rows.shape, "FP32")
    measurements.set_data_from_numpy(rows)
    rest.infer("iris-species", [measurements])
    stats = rest.get_inference_statistics("iris-species")["model_stats"]
    assert [s["name"] for s in stats] == ["iris-species"]
    assert stats[0]["inference_count"] >= 1 and stats[0]["inference_stats"]["success"]["count"] >= 1
    assert isinstance(stats[0]["inference_stats"]["fail"]["ns"], int)  # every count written, zeros as numbers
    every = {s["name"] for s in rest.get_inference_statistics()["model_stats"]}
    assert {"iris-species", "breast-cancer"} <= every
    index = {(m["name"], m.get("version", "")): m.get("state") for m in rest.get_model_repository_index()}
    expected = {(m.name, m.version): m.state for m in grpc_client.get_model_repository_index().models}
    assert index == expected and index[("iris-species", "1")] == "READY"
