"""Ground truth: outcomes reported later in bulk, joined to recorded predictions, give each
version's live quality (a shadow's on its primary's very requests) as offline scoring does."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES, meshserve_argv, start_mesh

pytestmark = pytest.mark.slow

PREDICTIONS = 1000


def request_for(request_id: str, row: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="breast-cancer", id=request_id,
                                   raw_input_contents=[np.ascontiguousarray(row[None, :]).tobytes()])
    request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    return request


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """1,000 predictions by version 1, each copied to version 2 as a shadow, and the rows behind them."""
    models = tmp_path_factory.mktemp("ground-truth")
    for name in ("breast_cancer", "breast_cancer_v2"):
        (models / name).symlink_to(EXAMPLES / name, target_is_directory=True)
    (models / "meshserve.yaml").write_text(
        "models:\n  breast-cancer:\n    variants: [{version: '1', weight: 100}]\n"
        "    shadows: [{version: '2', fraction: 1.0}]\n")
    data = load_breast_cancer()
    rows = {f"gt-{i}": i % len(data.target) for i in range(PREDICTIONS)}
    mesh = start_mesh(models)
    try:
        with grpc.insecure_channel(mesh.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            # Four at once: a shadow's copies do not wait for it, so a primary served faster than its
            # shadow leaves copies queueing there, and beyond its replicas' capacity they are shed.
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda item: stub.ModelInfer(request_for(item[0], data.data[item[1]]),
                                                                     timeout=30), rows.items()))
        assert len(answers) == PREDICTIONS
        from meshserve.sidecars.records.store import open_store

        store = open_store(str(models))
        try:
            deadline = __import__("time").monotonic() + 60
            while store.count("breast-cancer") < 2 * PREDICTIONS and __import__("time").monotonic() < deadline:
                __import__("time").sleep(0.3)
            # Every answer; a shadow slower than its primary on a busy machine may miss a few copies.
            assert store.count("breast-cancer") >= 1.9 * PREDICTIONS, "every answer and shadow copy recorded"
        finally:
            store.close()
    finally:
        mesh.stop()
    return models, rows, data


def write_outcomes(path: Path, rows: dict[str, int], target: np.ndarray) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["request_id", "label", "note"])
        for request_id, index in rows.items():
            writer.writerow([request_id, int(target[index]), "confirmed"])
        writer.writerow(["gt-5", int(target[5]), "reported twice"])  # a duplicate: the latest wins
        writer.writerow(["never-served-1", 1, ""])
        writer.writerow(["never-served-2", 0, ""])
        writer.writerow(["", 1, "no id"])
        writer.writerow(["gt-7", "", "no value"])


def test_bulk_outcomes_give_each_version_the_accuracy_that_offline_scoring_gives(served, tmp_path):
    models, rows, data = served
    outcomes = tmp_path / "outcomes.csv"
    write_outcomes(outcomes, rows, data.target)
    result = subprocess.run(meshserve_argv("outcomes", str(outcomes), "--store", str(models), "--model",
                                           "breast-cancer"), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    said = result.stdout
    assert f"{PREDICTIONS + 5:,} rows read, {PREDICTIONS + 2:,} outcomes stored" in said
    assert f"{PREDICTIONS:,} matched a recorded prediction" in said
    assert "2 unknown request ids" in said
    assert "1 duplicate request ids in the input" in said
    assert "2 malformed rows skipped" in said and "no 'request_id'" in said and "no outcome value" in said
    assert "note" in said  # a column that is no output of the model is said to be ignored

    report_path = tmp_path / "quality.html"
    quality = subprocess.run(meshserve_argv("quality", "breast-cancer", "--store", str(models), "--json",
                                            "--html", str(report_path)), capture_output=True, text=True, timeout=120)
    assert quality.returncode == 0, quality.stderr
    groups = {(g["version"], g["role"]): g for g in json.loads(quality.stdout)["groups"]}
    assert set(groups) == {("1", "primary"), ("2", "shadow")}
    from meshserve.sidecars.records.store import open_store

    store = open_store(str(models))
    try:  # a shadow on a busy machine may miss copies (it never delays its primary): score what it answered
        answered = {slot: {r for r, s in store.request_ids() if s == slot} for slot in ("answer", "shadow:2")}
        ok = {slot: {r["request_id"] for r in store.query("breast-cancer") if r["slot"] == slot and r["code"] == "OK"}
              for slot in answered}
    finally:
        store.close()
    assert len(ok["answer"]) == PREDICTIONS and len(ok["shadow:2"]) >= 0.8 * PREDICTIONS
    for version, folder, slot in (("1", "breast_cancer", "answer"), ("2", "breast_cancer_v2", "shadow:2")):
        scored = [(rid, index) for rid, index in rows.items() if rid in ok[slot]]
        indexes = np.array([index for _, index in scored])
        model = joblib.load(EXAMPLES / folder / "model.joblib")
        offline = accuracy_score(data.target[indexes], model.predict(data.data[indexes]))
        figures = groups[(version, "primary" if version == "1" else "shadow")]["outputs"]["label"]
        assert figures["n"] == len(scored)
        assert figures["accuracy"] == pytest.approx(offline, abs=1e-12)
        assert 0.5 < figures["auc"] <= 1.0 and "brier" in figures
    page = report_path.read_text()
    assert "<svg" in page and "version 2 (shadow)" in page and "Confusion matrix" in page


def test_the_quality_report_renders_in_a_real_browser(served, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (scripts/setup.d/70-reports.sh installs it)")
    models, rows, data = served
    report_path = tmp_path / "quality.html"
    subprocess.run(meshserve_argv("quality", "breast-cancer", "--store", str(models), "--html", str(report_path)),
                   capture_output=True, timeout=120, check=True)
    shot = tmp_path / "quality.png"
    profile = tempfile.mkdtemp(prefix="chromium-")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                    "--window-size=1100,1400", f"--screenshot={shot}", report_path.as_uri()],
                   capture_output=True, timeout=60)
    shutil.rmtree(profile, ignore_errors=True)
    assert shot.is_file() and shot.stat().st_size > 10_000, "the page did not render"
    from PIL import Image  # noqa: PLC0415 - only when a browser took the picture

    pixels = np.asarray(Image.open(shot).convert("RGB"))
    coloured = ((pixels[..., 2].astype(int) - pixels[..., 0].astype(int)) > 80).sum()
    assert coloured > 500, "no plotted lines or shaded cells in the rendered page"


def test_a_quality_below_the_bound_raises_an_alert(served):
    models, _, _ = served
    result = subprocess.run(meshserve_argv("quality", "breast-cancer", "--store", str(models), "--min-accuracy",
                                           "0.999"), capture_output=True, text=True, timeout=120)
    assert result.returncode == 3
    assert "ALERT: version 1 (primary): accuracy of label" in result.stdout


def test_compare_scores_shadow_and_primary_on_the_same_requests_and_gives_a_verdict(served):
    models, _, _ = served
    result = subprocess.run(meshserve_argv("compare", "breast-cancer", "--store", str(models)), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "quality on the same" in result.stdout and "label accuracy: primary" in result.stdout
    assert "verdict for shadow version 2" in result.stdout


def test_a_quality_threshold_in_the_spec_raises_an_alert_and_a_metric(served):
    from prometheus_client import REGISTRY

    from meshserve.observability.judging_metrics import QualityAlerts
    from meshserve.spec.deployment_spec import QualitySpec
    from meshserve.sidecars.records.quality import quality
    from meshserve.sidecars.records.store import open_store

    models, _, _ = served
    store = open_store(str(models))
    try:
        report = quality(store.joined("breast-cancer"))
    finally:
        store.close()
    alerts = QualityAlerts({"breast-cancer": QualitySpec(min_accuracy=0.999, min_outcomes=100)})
    said = alerts.judge("breast-cancer", report)
    assert any("version 1 (primary): accuracy of label" in s for s in said)
    labels = {"model": "breast-cancer", "version": "1", "role": "primary", "output": "label"}
    assert REGISTRY.get_sample_value("meshserve_quality_alerting", labels) == 1
    assert alerts.judge("breast-cancer", report) == [], "an open alert is not raised again"
