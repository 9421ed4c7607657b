"""`meshserve deploy` against a running mesh: the validation gate refuses, each time naming the
cause, or the version takes its role live with no failed request, and the deployment log says so.

One mesh serves version 1 of an echo model and stages versions 2-6 (weight 0: loaded, no
traffic), each made to fail one check of the gate, except 2, a good bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
import yaml
from conftest import meshserve_argv, start_mesh
from models.variant_packages import write_spec, write_variant_packages

from meshserve.v1 import control_pb2 as cpb
from meshserve.v1 import control_pb2_grpc as cpb_grpc

sys.path.insert(0, str(Path(__file__).parents[1] / "observability"))
from otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.slow

RENAMED_MODEL = '''import numpy as np


def predict(inputs):
    return {"y": inputs["z"].astype(np.float32)}
'''


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(meshserve_argv(*args), capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    env = {"MESHSERVE_BUNDLE_CACHE": str(root / "cache")}
    source = write_variant_packages(root / "src", "echo", ["1", "2", "3", "4", "5", "6"])
    models = root / "models"
    models.mkdir()
    for version in ("1", "3", "4", "6"):
        shutil.copytree(source / f"echo-{version}", models / f"echo-{version}")
    for version in ("2", "5"):  # good bundles; 5 is corrupted once the mesh runs it
        done = cli("package", str(source / f"echo-{version}"), "-o", str(models), env=env)
        assert done.returncode == 0, done.stderr
    # 3: golden examples recorded, then the model changed under them.
    done = cli("package", str(models / "echo-3"), "--golden-rows", "3", env=env)
    assert done.returncode == 0, done.stderr
    model = models / "echo-3" / "variant_model.py"
    model.write_text(model.read_text().replace('inputs["x"].astype(np.float32)}', 'inputs["x"].astype(np.float32) + 1}'))
    # 4: its input renamed from x to z.
    manifest = yaml.safe_load((models / "echo-4" / "model.yaml").read_text())
    manifest["signature"]["inputs"][0]["name"] = "z"
    manifest["entrypoint"] = "renamed:predict"
    (models / "echo-4" / "model.yaml").write_text(yaml.safe_dump(manifest))
    (models / "echo-4" / "renamed.py").write_text(RENAMED_MODEL)
    # 6: trained with another numpy than the one running here.
    manifest = yaml.safe_load((models / "echo-6" / "model.yaml").read_text())
    manifest["environment"] = {"python": {"version": platform.python_version(), "packages": ["numpy==0.0.1"]}}
    (models / "echo-6" / "model.yaml").write_text(yaml.safe_dump(manifest))
    write_spec(models, {"models": {"echo": {"variants": [{"version": "1", "weight": 100}] + [
        {"version": v, "weight": 0} for v in ("2", "3", "4", "5", "6")]}}})
    run_dir = root / "run"
    otlp = OtlpReceiver()
    traced = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
              "OTEL_BSP_SCHEDULE_DELAY": "100"}
    mesh = start_mesh(models, "--run-dir", str(run_dir), env={**env, **traced}, timeout=300)
    yield {"mesh": mesh, "models": models, "env": {**env, "MESHSERVE_LISTEN": mesh.address}, "run_dir": run_dir,
           "otlp": otlp}
    mesh.stop()
    otlp.stop()


def deploy(staged, *args: str) -> subprocess.CompletedProcess:
    return cli("deploy", "echo", *args, env=staged["env"])


def live_split(staged) -> tuple[dict, dict]:
    with grpc.insecure_channel(staged["mesh"].address) as channel:
        rollout = cpb_grpc.ControlStub(channel).GetRollout(cpb.GetRolloutRequest(model="echo"), timeout=10)
    return dict(rollout.weights), dict(rollout.shadows)


def log_entries(staged) -> list[dict]:
    path = staged["run_dir"] / "deployment-log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_refused(result: subprocess.CompletedProcess, version: str, check: str) -> None:
    assert result.returncode == 1, result
    assert f"the gate refused echo:{version} ({check}); nothing live changed" in result.stderr, result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_version_the_mesh_does_not_have_is_refused_with_where_to_put_it(staged):
    result = deploy(staged, "9", "--canary", "10")
    assert result.returncode == 1
    assert "FAILED_PRECONDITION: version '9' of 'echo' is not running in this mesh (running: 1, 2, 3, 4, 5, 6), " \
        "and no package of it is in the models folder " in result.stderr
    assert "into the models folder" in result.stderr and "and deploy again" in result.stderr
    assert "restart the mesh" not in result.stderr


def test_golden_examples_that_fail_refuse_the_version(staged):
    result = deploy(staged, "3", "--canary", "10")
    assert_refused(result, "3", "golden")
    assert ("FAIL  golden: 0 of 3 golden examples within tolerance 1e-06; worst: example 1, output 'y': "
            "expected [[0.25]], got [[1.25]] (difference 1)") in result.stdout
    assert live_split(staged) == ({"1": 100, "2": 0, "3": 0, "4": 0, "5": 0, "6": 0}, {})
    entry = log_entries(staged)[-1]
    assert (entry["action"], entry["result"], entry["version"]) == ("Deploy", "refused", "3")
    assert entry["reason"] == "gate refused: golden" and entry["gate"]["passed"] is False


def test_a_version_missing_an_input_the_live_version_has_is_refused_by_name(staged):
    result = deploy(staged, "4", "--canary", "10")
    assert_refused(result, "4", "signature")
    assert ("FAIL  signature: differs from live version 1: input 'x' of the live version is missing "
            "(removed or renamed); input 'z' is new: clients of the live version do not send it") in result.stdout


def corrupted_bundle(staged) -> tuple[Path, str, str]:
    """Version 5's bundle with one byte changed (once): (its path, the expected and the actual digest)."""
    [bundle] = staged["models"].glob("echo-5-*.msbundle")
    expected = bundle.name.removeprefix("echo-5-").removesuffix(".msbundle")
    data = bytearray(bundle.read_bytes())
    if hashlib.sha256(bytes(data)).hexdigest() == expected:
        data[-100] ^= 0xFF
        bundle.write_bytes(bytes(data))
    return bundle, expected, hashlib.sha256(bytes(data)).hexdigest()


def test_a_corrupted_bundle_is_refused_naming_both_digests(staged):
    bundle, expected, actual = corrupted_bundle(staged)
    result = deploy(staged, "5", "--shadow")
    assert_refused(result, "5", "digest")
    assert f"FAIL  digest: {bundle}: the bundle is corrupted: expected sha256 {expected}, actual {actual}" \
        in result.stdout


def test_an_environment_that_differs_is_refused_under_strict_and_a_warning_otherwise(staged):
    strict = deploy(staged, "6", "--shadow", "0.5", "--strict")
    assert_refused(strict, "6", "environment")
    assert "FAIL  environment: 1 difference(s) from the recorded environment (--strict): Python package numpy: " \
           f"recorded 0.0.1, running {np.__version__}" in strict.stdout
    assert live_split(staged)[1] == {}

    relaxed = deploy(staged, "6", "--shadow", "0.5")
    assert relaxed.returncode == 0, relaxed
    assert "warn  environment: 1 difference(s) from the recorded environment (warnings; --strict refuses)" \
        in relaxed.stdout
    assert "deployed echo:6 as shadow (50% of requests)" in relaxed.stdout
    assert live_split(staged)[1] == {"6": 0.5}


class Traffic:
    """Clients sending requests through the mesh's front the whole time, counting every failure."""

    def __init__(self, address: str, clients: int = 2):
        self.address = address
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.answers: list[tuple[str, str]] = []  # (version, request id)
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        client = triton.InferenceServerClient(self.address)
        tensor = triton.InferInput("x", [1, 1], "FP32")
        tensor.set_data_from_numpy(np.array([[1.5]], dtype=np.float32))
        while not self.stop.is_set():
            try:
                result = client.infer("echo", [tensor], client_timeout=30)
                response = result.get_response()
                self.answers.append((response.model_version, response.id))
            except Exception as exc:
                self.failures.append(str(exc))
        client.close()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


def test_a_passing_deploy_makes_the_staged_bundle_a_canary_with_no_failed_request(staged):
    [bundle] = staged["models"].glob("echo-2-*.msbundle")
    digest = bundle.name.removeprefix("echo-2-").removesuffix(".msbundle")
    traffic = Traffic(staged["mesh"].address)
    try:
        deadline = time.monotonic() + 30
        while len(traffic.answers) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        result = deploy(staged, str(bundle), "--canary", "50")
        assert result.returncode == 0, result
        before = len(traffic.answers)
        deadline = time.monotonic() + 60
        while sum(v == "2" for v, _ in traffic.answers[before:]) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        traffic.finish()
    assert traffic.failures == []
    for check in ("digest", "loads", "golden", "signature", "environment"):
        assert f"ok    {check}: " in result.stdout
    assert "ok    golden: 8 of 8 golden examples within tolerance 1e-06" in result.stdout
    assert "deployed echo:2 as canary (50%): weights 1=5000 (50.0%), 2=5000 (50.0%)" in result.stdout
    assert {v for v, _ in traffic.answers} >= {"1", "2"}
    weights, shadows = live_split(staged)
    assert (weights["1"], weights["2"], shadows) == (5000, 5000, {"6": 0.5})

    entry = log_entries(staged)[-1]
    assert (entry["action"], entry["result"], entry["version"], entry["role"]) == ("Deploy", "applied", "2", "canary")
    assert entry["digest"] == digest and entry["principal"] == "local"
    assert entry["gate"] == {"passed": True, "checks": {c: "passed" for c in
                                                        ("digest", "loads", "golden", "signature", "environment")}}

    # The bundle's digest is the one version 2's prediction records carry.
    request_id = next(rid for v, rid in traffic.answers if v == "2")
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(staged["mesh"].address) as channel:
        control = cpb_grpc.ControlStub(channel)
        while True:
            records = control.GetRecords(cpb.GetRecordsRequest(request_id=request_id), timeout=10).records
            answer = [r for r in records if r.slot == "answer" and r.side == "adapter"]
            if answer or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert answer and answer[0].version == "2" and answer[0].digest == digest
    # And the one its spans carry.
    spans = staged["otlp"].wait_for(lambda spans: any(
        s.service == "meshserve-adapter" and s.attributes.get("meshserve.version") == "2" for s in spans))
    assert {s.attributes.get("meshserve.digest") for s in spans if s.service == "meshserve-adapter"
            and s.attributes.get("meshserve.version") == "2" and s.name.startswith("ModelInfer")} == {digest}


def test_models_lists_each_version_with_its_digest_and_live_role(staged):
    [bundle] = staged["models"].glob("echo-2-*.msbundle")
    digest = bundle.name.removeprefix("echo-2-").removesuffix(".msbundle")
    if live_split(staged)[0].get("2", 0) == 0:  # when run alone, without the deploy before it
        assert deploy(staged, "2", "--canary", "50").returncode == 0
    listed = cli("models", "--mesh", staged["mesh"].address, env=staged["env"])
    assert listed.returncode == 0, listed
    rows = {tuple(line.split()[:2]): line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows[("echo", "2")][2:5] == [digest[:16], "canary", "50.0%"]
    assert rows[("echo", "1")][3:5] == ["primary", "50.0%"]
    assert rows[("echo", "3")][3:5] == ["staged", "(weight"]

    # From the folder: the corrupted bundle is named as refused, the others listed with their digests.
    corrupted, expected, actual = corrupted_bundle(staged)
    folder = cli("models", str(staged["models"]), env=staged["env"])
    assert folder.returncode == 0, folder
    assert f"echo   2        {digest[:16]}" in folder.stdout and bundle.name in folder.stdout
    assert (f"refused: {corrupted}: field '(digest)': the bundle is corrupted: expected sha256 "
            f"{expected}, actual {actual}") in folder.stdout, folder.stdout


def test_a_shadow_share_reads_as_a_percentage_or_every_request():
    from meshserve.cli.commands.deploy import role_share

    assert role_share("shadow", 1.0) == "shadow (every request)"
    assert role_share("shadow", 0.5) == "shadow (50% of requests)"
    assert role_share("shadow", 0.001) == "shadow (0.1% of requests)"
    assert role_share("canary", 10.0) == "canary (10%)"
    assert role_share("primary", 0.0) == "primary"
