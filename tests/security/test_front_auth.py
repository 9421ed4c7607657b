"""A mesh with TLS, JWT, API keys and per-principal rules, called through its real Envoy front:
an allowed principal gets its answer, a wrong one PERMISSION_DENIED, none UNAUTHENTICATED,
all before the router works; the control API answers only admins, and logs who changed what."""

import json
import os
import subprocess

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException

from conftest import EXAMPLES, meshserve_argv, start_mesh
from credentials import AUDIENCE, ISSUER, make_certificate, token, write_api_keys, write_jwks
from meshserve.v1 import control_pb2 as cpb
from meshserve.v1 import control_pb2_grpc as cpb_grpc

SCORER_KEY = "scorer-key-0123456789abcdef"
SECURITY = f"""
security:
  tls: {{certificate: front.pem, private_key: front.key}}
  jwt: {{issuer: "{ISSUER}", audiences: [{AUDIENCE}], jwks_file: jwks.json}}
  api_keys_file: api-keys.yaml
  control_from: []          # no peer is trusted: only the admin principal may use the control API
  principals:
    scorer: {{models: [iris-species]}}
    auditor: {{records: true}}
    ops: {{admin: true}}
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secured-mesh")
    for name in ("iris_species", "breast_cancer"):
        (folder / name).symlink_to(EXAMPLES / name, target_is_directory=True)
    make_certificate(folder)
    write_jwks(folder / "jwks.json")
    write_api_keys(folder / "api-keys.yaml", {"scorer": SCORER_KEY})
    (folder / "meshserve.yaml").write_text(SECURITY)
    run_dir = folder / "run"
    process = start_mesh(folder, "--run-dir", str(run_dir))
    process.certificate_path = folder / "front.pem"
    process.certificate = process.certificate_path.read_bytes()
    process.run_dir = run_dir
    yield process
    process.stop()


@pytest.fixture(scope="module")
def channel(secured):
    credentials = grpc.ssl_channel_credentials(root_certificates=secured.certificate)
    with grpc.secure_channel(secured.address, credentials) as channel:
        yield channel


def iris_request(model="iris-species") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    if model == "iris-species":
        request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
        request.raw_input_contents.append(np.full((1, 4), 1.5, np.float32).tobytes())
    return request


def bearer(subject: str, **claims) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token(subject, **claims)}")]


def status(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


def test_an_allowed_principal_gets_its_answer_over_tls_with_a_jwt(channel):
    answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(iris_request(), metadata=bearer("scorer"), timeout=10)
    assert answer.outputs[0].name == "species"


def test_an_api_key_works_like_a_token(channel):
    answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
        iris_request(), metadata=[("x-api-key", SCORER_KEY)], timeout=10)
    assert answer.outputs[0].name == "species"


@pytest.mark.parametrize("case, metadata, code", [
    ("no credentials", [], grpc.StatusCode.UNAUTHENTICATED),
    ("a token signed with another key", bearer("scorer", secret=b"x" * 32), grpc.StatusCode.UNAUTHENTICATED),
    ("an expired token", bearer("scorer", expires_in=-120), grpc.StatusCode.UNAUTHENTICATED),
    # A valid token meant for another service: Envoy answers 403, the token is genuine but not for us.
    ("a token for another audience", bearer("scorer", audience="elsewhere"), grpc.StatusCode.PERMISSION_DENIED),
    ("a wrong API key", [("x-api-key", "not-the-key-0123456789")], grpc.StatusCode.UNAUTHENTICATED),
    ("a subject with no rules", bearer("mallory"), grpc.StatusCode.PERMISSION_DENIED),
    ("a principal header the client made up", [("x-meshserve-principal", "scorer")], grpc.StatusCode.UNAUTHENTICATED),
])
def test_a_caller_without_the_right_credentials_is_refused_at_the_front(secured, channel, case, metadata, code):
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    assert status(lambda: stub.ModelInfer(iris_request(), metadata=metadata, timeout=10)) == code, case


def test_a_principal_may_call_only_its_own_models(channel):
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(iris_request("breast-cancer"), metadata=bearer("scorer"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "principal 'scorer' may not call model 'breast-cancer'" in caught.value.details()
    assert status(lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="breast-cancer"),
                                             metadata=bearer("scorer"), timeout=10)) == grpc.StatusCode.PERMISSION_DENIED


def test_the_control_api_answers_only_admins_and_logs_who_changed_what(secured, channel):
    control = cpb_grpc.ControlStub(channel)
    rollout = cpb.SetRolloutRequest(rollout=cpb.Rollout(model="iris-species", weights={"1": 100}))
    for who in ("scorer", "auditor"):
        assert status(lambda: control.SetRollout(rollout, metadata=bearer(who), timeout=15)) == \
            grpc.StatusCode.PERMISSION_DENIED
        assert status(lambda: control.ListModels(cpb.ListModelsRequest(), metadata=bearer(who), timeout=15)) == \
            grpc.StatusCode.PERMISSION_DENIED
    assert status(lambda: control.SetRollout(rollout, timeout=15)) == grpc.StatusCode.UNAUTHENTICATED
    applied = control.SetRollout(rollout, metadata=bearer("ops"), timeout=15)
    assert dict(applied.weights) == {"1": 100}
    listed = control.ListModels(cpb.ListModelsRequest(), metadata=bearer("ops"), timeout=15)
    assert all(v.package_path for m in listed.models for v in m.versions)  # admins see where packages live
    entries = [json.loads(line) for line in (secured.run_dir / "deployment-log.jsonl").read_text().splitlines()]
    assert entries[-1]["principal"] == "ops" and entries[-1]["action"] == "SetRollout"
    assert entries[-1]["result"] == "applied" and entries[-1]["peer"] == "127.0.0.1"
    assert (secured.run_dir / "deployment-log.jsonl").stat().st_mode & 0o077 == 0


def test_a_records_reader_may_read_records_and_nothing_else_of_the_control_api(channel):
    control = cpb_grpc.ControlStub(channel)
    code = status(lambda: control.GetRecords(cpb.GetRecordsRequest(request_id=""), metadata=bearer("auditor"),
                                             timeout=15))
    assert code == grpc.StatusCode.INVALID_ARGUMENT  # past the front; the router asks for an id
    assert status(lambda: control.GetRecords(cpb.GetRecordsRequest(request_id="x"), metadata=bearer("scorer"),
                                             timeout=15)) == grpc.StatusCode.PERMISSION_DENIED


def test_health_probes_need_no_credentials(channel):
    answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_tritonclient_connects_with_ssl_and_a_bearer_token(secured, tmp_path):
    ca = tmp_path / "front.pem"
    ca.write_bytes(secured.certificate)
    client = triton.InferenceServerClient(secured.address, ssl=True, root_certificates=str(ca))
    inputs = [triton.InferInput("measurements", [1, 4], "FP32")]
    inputs[0].set_data_from_numpy(np.full((1, 4), 1.5, np.float32))
    answer = client.infer("iris-species", inputs, headers={"authorization": f"Bearer {token('scorer')}"})
    assert answer.as_numpy("species").shape == (1,)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("iris-species", inputs)
    assert "UNAUTHENTICATED" in refused.value.status()


def test_plain_text_is_not_served_on_the_tls_port(secured):
    with grpc.insecure_channel(secured.address) as plain:
        assert status(lambda: pb_grpc.GRPCInferenceServiceStub(plain).ServerLive(pb.ServerLiveRequest(), timeout=3)) \
            == grpc.StatusCode.UNAVAILABLE


def test_the_router_never_spent_work_on_refused_callers(secured):
    assert "Traceback" not in secured.output


def test_meshserve_rollout_works_over_tls_with_an_admin_token_from_the_environment(secured):
    argv = meshserve_argv("rollout", "iris-species", "--weights", "1=100", "--address", secured.address,
                          "--ca", str(secured.certificate_path))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHSERVE_CLIENT_")}
    refused = subprocess.run(argv, capture_output=True, text=True, env=environment, timeout=60)
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          env={**environment, "MESHSERVE_CLIENT_TOKEN": token("ops")})
    assert done.returncode == 0, done.stderr
    assert "iris-species: weights 1=100 (100.0%)" in done.stdout


def test_api_keys_reach_only_files_no_other_user_can_read(secured):
    bootstrap = secured.run_dir / "envoy" / "bootstrap.yaml"
    assert SCORER_KEY in bootstrap.read_text()  # Envoy needs them in its configuration...
    assert bootstrap.stat().st_mode & 0o077 == 0  # ...which only the mesh's user can read
    assert SCORER_KEY not in secured.output


def rest_call(secured, path: str, headers: dict[str, str] | None = None, body: bytes | None = None):
    """An HTTPS request to the front (the REST binding shares the gRPC address): status and JSON."""
    import http.client
    import ssl

    context = ssl.create_default_context(cafile=str(secured.certificate_path))
    host, _, port = secured.address.rpartition(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
    try:
        connection.request("POST" if body is not None else "GET", path, body,
                           {"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        text = response.read()
        return response.status, json.loads(text) if text.startswith(b"{") else text
    finally:
        connection.close()


IRIS_JSON = json.dumps({"inputs": [{"name": "measurements", "shape": [1, 4], "datatype": "FP32",
                                    "data": [1.5, 1.5, 1.5, 1.5]}]}).encode()
BREAST_CANCER_JSON = json.dumps({"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP64",
                                             "data": [1.0] * 30}]}).encode()


@pytest.mark.parametrize("case, headers, status_code", [
    ("no credentials", {}, 401),
    ("a token from another issuer", {"authorization": f"Bearer {token('scorer', issuer='https://evil.example')}"}, 401),
    ("a wrong API key", {"x-api-key": "not-the-key-0123456789"}, 401),
    ("a principal without models", {"authorization": f"Bearer {token('auditor')}"}, 403),
])
def test_rest_callers_without_the_right_credentials_are_refused_at_the_front(secured, case, headers, status_code):
    status_seen, _ = rest_call(secured, "/v2/models/iris-species/infer", headers, IRIS_JSON)
    assert status_seen == status_code, case
    assert rest_call(secured, "/v2/models/iris-species", headers)[0] == status_code, case


def test_rest_applies_the_same_principals_tokens_and_keys_as_grpc(secured):
    status_seen, answer = rest_call(secured, "/v2/models/iris-species/infer",
                                    {"authorization": f"Bearer {token('scorer')}"}, IRIS_JSON)
    assert status_seen == 200 and answer["model_name"] == "iris-species"
    assert rest_call(secured, "/v2/models/iris-species/infer", {"x-api-key": SCORER_KEY}, IRIS_JSON)[0] == 200
    status_seen, refused = rest_call(secured, "/v2/models/breast-cancer/infer",
                                     {"authorization": f"Bearer {token('scorer')}"}, BREAST_CANCER_JSON)
    assert status_seen == 403 and "may not call model 'breast-cancer'" in refused["error"]
    # A principal header sent by the client is removed at the front: it cannot pose as another.
    forged = {"x-meshserve-principal": "ops"}
    assert rest_call(secured, "/v2/models/breast-cancer/infer", forged, BREAST_CANCER_JSON)[0] == 401


def test_rest_health_probes_need_no_credentials(secured):
    for path in ("/v2/health/live", "/v2/health/ready"):
        assert rest_call(secured, path)[0] == 200, path
