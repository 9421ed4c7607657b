"""Every command that reaches a mesh works against a secured one (TLS, JWT and API keys at its
Envoy front, an admin-only control API) given the CA and credentials, and without them says
what to do: pass --ca, set MESHSERVE_CLIENT_TOKEN or MESHSERVE_CLIENT_API_KEY, or use a
principal allowed the call."""

from __future__ import annotations

import csv
import json
import os
import subprocess

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES, meshserve_argv, start_mesh
from credentials import AUDIENCE, ISSUER, make_certificate, token, write_api_keys, write_jwks

KEYS = {"scorer": "scorer-key-0123456789abcdef", "auditor": "auditor-key-0123456789abcdef",
        "ops": "ops-key-0123456789abcdef"}
AUDITED_REQUEST = "cli-secured-audit-1"
# breast-cancer's version 2 is rolled out step by step; the plan holds at its first step (it
# never gets the requests a step needs), so each hand-made action shows in its status.
SPEC = f"""
security:
  tls: {{certificate: front.pem, private_key: front.key}}
  jwt: {{issuer: "{ISSUER}", audiences: [{AUDIENCE}], jwks_file: jwks.json}}
  api_keys_file: api-keys.yaml
  control_from: []          # not even this machine may use the control API without an admin principal
  principals:
    scorer: {{models: [iris-species]}}
    auditor: {{records: true}}
    ops: {{admin: true}}
models:
  breast-cancer:
    variants:
      - {{version: "1", weight: 100}}
      - {{version: "2", weight: 0}}
    rollout_plan: {{candidate: "2", steps: [10, 100], min_step_s: 3600, max_step_s: 3600, min_requests: 1000000}}
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-secured-mesh")
    for name in ("iris_species", "breast_cancer", "breast_cancer_v2"):
        (folder / name).symlink_to(EXAMPLES / name, target_is_directory=True)
    make_certificate(folder)
    write_jwks(folder / "jwks.json")
    write_api_keys(folder / "api-keys.yaml", KEYS)
    (folder / "meshserve.yaml").write_text(SPEC)
    process = start_mesh(folder, "--run-dir", str(folder / "run"))
    process.ca = str(folder / "front.pem")
    process.folder = folder
    yield process
    process.stop()


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-secured-input") / "flowers.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"])
        writer.writerows([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]] * 4)
    return path


@pytest.fixture(scope="module")
def audited(mesh):
    """Answered requests, made by the scorer: one for `meshserve audit` to find, the others the
    background `meshserve explain` compares it with; the last one is recorded once audit finds it."""
    credentials = grpc.ssl_channel_credentials(root_certificates=open(mesh.ca, "rb").read())
    ids = [AUDITED_REQUEST] + [f"cli-secured-background-{i}" for i in range(4)]
    with grpc.secure_channel(mesh.address, credentials) as channel:
        for i, request_id in enumerate(ids):
            request = pb.ModelInferRequest(model_name="iris-species", id=request_id)
            request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
            request.raw_input_contents.append(np.array([[5.1 + i, 3.5, 1.4 + i, 0.2]], np.float32).tobytes())
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, metadata=[("x-api-key", KEYS["scorer"])],
                                                                 timeout=30)
    return ids


def meshserve(*args: str, **variables: str) -> subprocess.CompletedProcess:
    """Run a command with only the MESHSERVE_CLIENT_* variables given here."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHSERVE_CLIENT_")}
    return subprocess.run(meshserve_argv(*args), capture_output=True, text=True, timeout=120,
                          env={**environment, **variables})


def admin() -> dict[str, str]:
    return {"MESHSERVE_CLIENT_TOKEN": token("ops")}


def test_an_admin_pauses_resumes_and_rolls_back_a_progressive_rollout(mesh):
    where = ("--address", mesh.address, "--ca", mesh.ca)
    status = meshserve("rollout", "status", "breast-cancer", *where, **admin())
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("breast-cancer: version 2 against 1: step 1 of 2 (10%)")
    paused = meshserve("rollout", "pause", "breast-cancer", *where, **admin())
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith("breast-cancer: version 2 against 1: step 1 of 2 (10%) (paused)")
    resumed = meshserve("rollout", "resume", "breast-cancer", *where, **admin())
    assert resumed.returncode == 0 and "(paused)" not in resumed.stdout.splitlines()[0], resumed.stderr
    rolled_back = meshserve("rollout", "rollback", "breast-cancer", *where, **admin())
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert "version 2 against 1: rolled_back" in rolled_back.stdout
    split = meshserve("rollout", "breast-cancer", *where, **admin())
    assert split.returncode == 0 and "weights 1=100 (100.0%), 2=0 (0.0%)" in split.stdout, split.stderr
    log = [json.loads(line) for line in (mesh.folder / "run" / "deployment-log.jsonl").read_text().splitlines()]
    by_hand = [(entry["what"].split(":")[0], entry["by"]) for entry in log if entry.get("why") == "asked by hand"]
    assert by_hand == [(what, "ops from 127.0.0.1 (control API)") for what in ("paused", "resumed", "rolled back")]


def test_an_api_key_works_like_a_token_and_models_lists_the_live_roles(mesh):
    listed = meshserve("models", "--mesh", mesh.address, "--ca", mesh.ca, MESHSERVE_CLIENT_API_KEY=KEYS["ops"])
    assert listed.returncode == 0, listed.stderr
    assert "iris-species" in listed.stdout and "breast-cancer" in listed.stdout


def test_a_records_reader_audits_a_request_through_the_mesh(mesh, audited):
    for request_id in (audited[-1], audited[0]):
        found = meshserve("audit", request_id, "--address", mesh.address, "--ca", mesh.ca, "--wait", "15",
                          MESHSERVE_CLIENT_API_KEY=KEYS["auditor"])
        assert found.returncode == 0, found.stderr
        assert "iris-species" in found.stdout


def test_a_records_reader_compares_measures_and_exports_through_the_mesh(mesh, audited, tmp_path):
    meshserve("audit", audited[-1], "--address", mesh.address, "--ca", mesh.ca, "--wait", "15",
              MESHSERVE_CLIENT_API_KEY=KEYS["auditor"])  # every record is stored
    where = ("--address", mesh.address, "--ca", mesh.ca)
    for command in (("compare", "iris-species"), ("quality", "iris-species"), ("drift", "iris-species"),
                    ("records", "export", "--model", "iris-species", "-o", str(tmp_path / "iris.csv"))):
        read = meshserve(*command, *where, MESHSERVE_CLIENT_API_KEY=KEYS["auditor"])
        assert read.returncode in (0, 3), (command, read.stderr)
        assert "Traceback" not in read.stderr
    assert AUDITED_REQUEST in (tmp_path / "iris.csv").read_text()
    refused = meshserve("quality", "iris-species", *where, MESHSERVE_CLIENT_API_KEY=KEYS["scorer"])
    assert refused.returncode == 1 and "PERMISSION_DENIED" in refused.stderr and "`records: true`" in refused.stderr
    # Explaining scores the model: a records reader who may not call it is refused, naming why.
    unexplained = meshserve("explain", audited[0], *where, MESHSERVE_CLIENT_API_KEY=KEYS["auditor"])
    assert unexplained.returncode == 1 and "PERMISSION_DENIED" in unexplained.stderr
    assert "principal 'auditor' may not call model 'iris-species'" in unexplained.stderr
    explained = meshserve("explain", audited[0], *where, "--json", **admin())
    assert explained.returncode == 0, explained.stderr
    assert len(json.loads(explained.stdout)["attributions"]) == 4


def test_explain_scores_through_the_mesh_with_the_scorers_key(mesh, audited):
    meshserve("audit", audited[-1], "--address", mesh.address, "--ca", mesh.ca, "--wait", "15",
              MESHSERVE_CLIENT_API_KEY=KEYS["auditor"])  # every record is stored
    where = ("--store", str(mesh.folder), "--address", mesh.address, "--ca", mesh.ca, "--json")
    explained = meshserve("explain", audited[0], *where, MESHSERVE_CLIENT_API_KEY=KEYS["scorer"])
    assert explained.returncode == 0, explained.stderr
    assert set(json.loads(explained.stdout)["attributions"]) == {"sepal length (cm)", "sepal width (cm)",
                                                                 "petal length (cm)", "petal width (cm)"}
    refused = meshserve("explain", audited[0], *where)
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    assert "set MESHSERVE_CLIENT_TOKEN" in refused.stderr


def test_a_batch_job_scores_a_file_with_the_ca_and_key_from_the_environment(mesh, rows, tmp_path):
    out = tmp_path / "scored.csv"
    scored = meshserve("batch", "iris-species", str(rows), "-o", str(out), "--address", mesh.address,
                       MESHSERVE_CLIENT_CA=mesh.ca, MESHSERVE_CLIENT_API_KEY=KEYS["ops"])
    assert scored.returncode == 0, scored.stderr
    assert "wrote 12 scored rows" in scored.stdout
    assert out.read_text().count("\n") == 13  # a header and the 12 rows


COMMANDS = {
    "rollout status": lambda mesh, rows, out: ("rollout", "status", "breast-cancer", "--address", mesh.address),
    "rollout": lambda mesh, rows, out: ("rollout", "breast-cancer", "--address", mesh.address),
    "audit": lambda mesh, rows, out: ("audit", AUDITED_REQUEST, "--wait", "0", "--address", mesh.address),
    "batch": lambda mesh, rows, out: ("batch", "iris-species", str(rows), "-o", str(out), "--address", mesh.address),
    "models": lambda mesh, rows, out: ("models", "--mesh", mesh.address),
    "deploy": lambda mesh, rows, out: ("deploy", "breast-cancer", "2", "--canary", "10", "--address", mesh.address),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_without_credentials_a_command_says_which_variables_to_set(mesh, rows, tmp_path, command):
    refused = meshserve(*COMMANDS[command](mesh, rows, tmp_path / "out.csv"), "--ca", mesh.ca)
    assert refused.returncode == 1, refused.stdout
    assert "UNAUTHENTICATED: " in refused.stderr
    assert "set MESHSERVE_CLIENT_TOKEN" in refused.stderr and "MESHSERVE_CLIENT_API_KEY" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_in_plain_text_a_command_says_to_pass_the_ca(mesh, rows, tmp_path, command):
    refused = meshserve(*COMMANDS[command](mesh, rows, tmp_path / "out.csv"), **admin())
    assert refused.returncode == 1, refused.stdout
    assert "UNAVAILABLE: " in refused.stderr
    assert "pass --ca PEM (or set MESHSERVE_CLIENT_CA)" in refused.stderr


def test_a_principal_without_the_right_says_which_principal_is_needed(mesh):
    refused = meshserve("rollout", "status", "breast-cancer", "--address", mesh.address, "--ca", mesh.ca,
                        MESHSERVE_CLIENT_API_KEY=KEYS["scorer"])
    assert refused.returncode == 1
    assert "PERMISSION_DENIED" in refused.stderr and "`admin: true`" in refused.stderr


def test_a_certificate_the_front_was_not_signed_with_fails_the_handshake(mesh, tmp_path):
    other, _ = make_certificate(tmp_path)
    refused = meshserve("rollout", "status", "breast-cancer", "--address", mesh.address, "--ca", str(other), **admin())
    assert refused.returncode == 1
    assert "UNAVAILABLE" in refused.stderr and f"TLS handshake with {mesh.address} failed: check that {other}" in refused.stderr


def test_a_missing_ca_file_is_named_before_any_call(mesh, tmp_path):
    missing = tmp_path / "nowhere.pem"
    refused = meshserve("audit", "x", "--address", mesh.address, MESHSERVE_CLIENT_CA=str(missing), **admin())
    assert refused.returncode == 2
    assert f"MESHSERVE_CLIENT_CA {missing}: no such file" in refused.stderr


def test_a_ca_given_for_a_plain_text_server_says_to_drop_it(tmp_path):
    from concurrent import futures

    certificate, _ = make_certificate(tmp_path)
    server = grpc.server(futures.ThreadPoolExecutor(1))
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        refused = meshserve("rollout", "status", "breast-cancer", "--address", address, "--ca", str(certificate))
    finally:
        server.stop(None)
    assert refused.returncode == 1
    assert f"the mesh at {address} does not serve TLS: drop --ca and MESHSERVE_CLIENT_CA" in refused.stderr
