"""Progressive delivery under generated load: a good candidate is promoted step by step to 100%,
one that fails on a fifth of its inputs is rolled back within its first step without a client
request failing because of the rollback, and one that disagrees with its primary in its shadow
stage never gets live traffic."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml
from sklearn.datasets import load_breast_cancer
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES, meshserve_argv, start_mesh

pytestmark = pytest.mark.slow

WRAPPER = textwrap.dedent('''
    from pathlib import Path

    import joblib
    import numpy as np

    MODEL = joblib.load(Path(__file__).with_name("model.joblib"))
    BEHAVIOUR = "{behaviour}"


    def predict(inputs):
        features = inputs["features"]
        marked = np.floor(features[:, 0] * 100).astype(np.int64) % 5 == 0
        label = MODEL.predict(features)
        if BEHAVIOUR == "fail" and marked.any():
            raise ValueError("this version cannot score such a row")
        if BEHAVIOUR == "disagree":
            label = np.where(marked, 1 - label, label)
        return {{"label": label.astype(np.int64), "probabilities": MODEL.predict_proba(features)}}
''')
PLAN = {"steps": [20, 50, 100], "min_step_s": 1, "max_step_s": 60, "min_requests": 40,
        "bounds": {"max_error_rate": 0.02, "max_p99_ratio": 50, "max_disagreement": 0.05}}


def write_package(root: Path, model: str, version: str, behaviour: str) -> None:
    package = root / f"{model}-{version}"
    package.mkdir()
    shutil.copy(EXAMPLES / "breast_cancer" / "model.joblib", package / "model.joblib")
    (package / "wrapper.py").write_text(WRAPPER.format(behaviour=behaviour))
    manifest = yaml.safe_load((EXAMPLES / "breast_cancer" / "model.yaml").read_text())
    manifest.update(name=model, version=version, entrypoint="wrapper:predict", description=behaviour)
    for key in ("python", "environment", "baseline", "golden"):  # the baseline and golden files are not copied
        manifest.pop(key, None)
    (package / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def request_for(model: str, row: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, raw_input_contents=[np.ascontiguousarray(row[None, :]).tobytes()])
    request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    return request


def status(mesh, model: str) -> dict:
    result = subprocess.run(meshserve_argv("rollout", "status", model, "--address", mesh.address), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    models = tmp_path_factory.mktemp("progressive")
    spec = {"models": {}}
    for model, behaviour, shadow_stage in (("cancer-good", "copy", False), ("cancer-bad", "fail", False),
                                           ("cancer-disagree", "disagree", True), ("cancer-truth", "disagree", False)):
        write_package(models, model, "1", "copy")
        write_package(models, model, "2", behaviour)
        plan = {"candidate": "2", "shadow_stage": shadow_stage, **PLAN}
        if model == "cancer-truth":  # judged on reported outcomes, not on disagreement
            plan["bounds"] = {**PLAN["bounds"], "max_accuracy_drop": 0.02, "min_outcomes": 40}
        spec["models"][model] = {"variants": [{"version": "1", "weight": 100}, {"version": "2", "weight": 0}],
                                 "rollout_plan": plan}
    (models / "meshserve.yaml").write_text(yaml.safe_dump(spec))
    mesh = start_mesh(models)
    dataset = load_breast_cancer()
    data = dataset.data
    outcomes: dict[str, Counter] = {m: Counter() for m in spec["models"]}
    answered: list[tuple[str, int]] = []  # cancer-truth's request ids and their true labels
    stop = threading.Event()

    def client(model: str, offset: int) -> None:
        with grpc.insecure_channel(mesh.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            i = offset
            while not stop.is_set():
                i += 7
                request = request_for(model, data[i % len(data)])
                request.id = f"{model}-{offset}-{i}"
                try:
                    stub.ModelInfer(request, timeout=10)
                    outcomes[model]["OK"] += 1
                    if model == "cancer-truth":
                        answered.append((request.id, int(dataset.target[i % len(data)])))
                except grpc.RpcError as exc:
                    outcomes[model][exc.code().name] += 1
                time.sleep(0.002)

    def report_outcomes() -> None:
        """The truth arrives a little later, as it does in production."""
        from meshserve.v1 import control_pb2 as cpb
        from meshserve.v1 import control_pb2_grpc as cpb_grpc

        sent = 0
        with grpc.insecure_channel(mesh.address) as channel:
            control = cpb_grpc.ControlStub(channel)
            while not stop.is_set():
                time.sleep(0.5)
                batch, sent = answered[sent:], len(answered)
                if batch:
                    control.RecordOutcomes(cpb.RecordOutcomesRequest(outcomes=[
                        cpb.Outcome(request_id=rid, label=str(label)) for rid, label in batch]), timeout=30)

    threads = [threading.Thread(target=client, args=(m, k), daemon=True) for m in spec["models"] for k in range(3)]
    threads.append(threading.Thread(target=report_outcomes, daemon=True))
    for thread in threads:
        thread.start()
    run_dir_log = None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            texts = {m: status(mesh, m) for m in spec["models"]}
            if ": done" in texts["cancer-good"] and "rolled_back" in texts["cancer-bad"] and \
                    "rolled_back" in texts["cancer-disagree"] and "rolled_back" in texts["cancer-truth"]:
                break
            time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(30)
        final = {}
        with grpc.insecure_channel(mesh.address) as channel:
            from meshserve.v1 import control_pb2 as cpb
            from meshserve.v1 import control_pb2_grpc as cpb_grpc

            control = cpb_grpc.ControlStub(channel)
            for model in spec["models"]:
                final[model] = json.loads(control.GetRolloutStatus(cpb.GetRolloutRequest(model=model),
                                                                   timeout=30).status_json)
        run_dir_log = final
        yield mesh, final, outcomes
    finally:
        stop.set()
        mesh.stop()
    assert run_dir_log is not None


def test_a_good_candidate_is_promoted_step_by_step_to_all_traffic(rollout):
    mesh, final, outcomes = rollout
    good = final["cancer-good"]
    assert good["state"]["stage"] == "done", good
    assert good["weights"] == {"1": 0, "2": 100}
    steps = [e["what"] for e in good["log"]]
    assert steps == ["step 1: version 2 gets 20%", "step 2: version 2 gets 50%", "step 3: version 2 gets 100%"], steps
    assert all("every bound kept" in e["why"] for e in good["log"][1:])
    assert set(outcomes["cancer-good"]) == {"OK"}, outcomes["cancer-good"]


def test_a_failing_candidate_is_rolled_back_within_its_first_step_and_the_rollback_fails_no_request(rollout):
    mesh, final, outcomes = rollout
    bad = final["cancer-bad"]
    assert bad["state"]["stage"] == "rolled_back"
    assert bad["weights"]["2"] == 0 and bad["weights"]["1"] == 100
    whats = [e["what"] for e in bad["log"]]
    assert whats == ["step 1: version 2 gets 20%", "rolled back: version 2 gets no traffic"], whats
    assert "error rate" in bad["log"][-1]["why"]
    # Clients saw the candidate's own errors (INTERNAL) while it had traffic, and nothing else.
    assert set(outcomes["cancer-bad"]) <= {"OK", "INTERNAL"}, outcomes["cancer-bad"]
    assert outcomes["cancer-bad"]["INTERNAL"] > 0


def test_a_candidate_that_disagrees_in_its_shadow_stage_never_gets_live_traffic(rollout):
    mesh, final, outcomes = rollout
    disagree = final["cancer-disagree"]
    assert disagree["state"]["stage"] == "rolled_back"
    assert "disagreement" in disagree["log"][-1]["why"]
    assert all((entry.get("weights") or {}).get("2", 0) == 0 for entry in disagree["log"]), disagree["log"]
    assert disagree["weights"]["2"] == 0 and "2" not in disagree["shadows"]
    assert set(outcomes["cancer-disagree"]) == {"OK"}


def test_a_candidate_less_accurate_on_reported_outcomes_than_its_primary_is_rolled_back(rollout):
    mesh, final, outcomes = rollout
    truth = final["cancer-truth"]
    assert truth["state"]["stage"] == "rolled_back", truth
    reason = truth["log"][-1]["why"]
    assert "accuracy" in reason and "trails version 1" in reason, reason
    figures = truth["state"]["measurements"]
    assert figures["candidate_outcomes"] >= 40 and figures["accuracy_drop"] > 0.02
    assert truth["weights"] == {"1": 100, "2": 0}
