"""Drift on a real mesh: 5,000 rows drawn from the training distribution raise nothing; one feature
moved by two standard deviations raises an alert naming exactly that feature within the count
window, as a log line, in `meshserve drift` (exit code 3) and in an HTML report a browser renders."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml
from conftest import EXAMPLES, ROOT, meshserve_argv, start_mesh, wait_for
from sklearn.datasets import load_breast_cancer
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.slow

ROWS_PER_REQUEST = 50
UNCHANGED_ROWS = 5000
WINDOW_ROWS = 1000
# A feature the model gives no weight: moving it changes no answer, so the outputs rightly stay
# put too and the only drift there is to find is in this one input column.
SHIFTED = "fractal dimension error"


def request_for(request_id: str, rows: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="breast-cancer", id=request_id,
                                   raw_input_contents=[np.ascontiguousarray(rows, dtype=np.float64).tobytes()])
    request.inputs.add(name="features", datatype="FP64", shape=list(rows.shape))
    return request


def send(stub, rows: np.ndarray, prefix: str) -> None:
    for i in range(0, len(rows), ROWS_PER_REQUEST):
        answer = stub.ModelInfer(request_for(f"{prefix}-{i}", rows[i:i + ROWS_PER_REQUEST]), timeout=30)
        assert answer.model_version == "1"



def drift_state(models: Path) -> tuple[list[dict], list[dict]]:
    from meshserve.sidecars.drift.drift_tables import DriftTables
    from meshserve.sidecars.records.store import open_store

    store = open_store(str(models))
    try:
        tables = DriftTables(store)
        return tables.status("breast-cancer"), tables.open_alerts("breast-cancer")
    finally:
        store.close()


def checked_all(state: tuple[list[dict], list[dict]], rows: int) -> tuple | None:
    """STATE once a check's time window has seen all ROWS, else None."""
    return state if any(r["window_kind"] == "time" and r["row_count"] == rows for r in state[0]) else None


def scrape_recorder(mesh) -> str:
    """The recorder's /metrics, found in the targets `meshserve up` prints."""
    import re
    import urllib.request

    url = next(m.group(1) for line in mesh.lines if (m := re.search(r"meshserve-recorder: (\S+)", line)))
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read().decode()


@pytest.fixture(scope="module")
def drifted(tmp_path_factory):
    """A mesh that served 5,000 unchanged rows, then 1,000 with SHIFTED moved; what it said on the way."""
    models = tmp_path_factory.mktemp("drift")
    (models / "breast_cancer").symlink_to(EXAMPLES / "breast_cancer", target_is_directory=True)
    (models / "meshserve.yaml").write_text(yaml.safe_dump({"models": {"breast-cancer": {
        "variants": [{"version": "1", "weight": 100}],
        "drift": {"window_rows": WINDOW_ROWS, "window_s": 3600, "min_samples": 200, "psi_threshold": 0.2}}}}))
    data = load_breast_cancer()
    rng = np.random.default_rng(12)
    mesh = start_mesh(models, env={"MESHSERVE_DRIFT_CHECK_EVERY_S": "1"})
    try:
        with grpc.insecure_channel(mesh.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            send(stub, data.data[rng.integers(0, len(data.target), UNCHANGED_ROWS)], "same")
            # A check that has seen all 5,000 rows in its time window.
            quiet = wait_for(lambda: checked_all(drift_state(models), UNCHANGED_ROWS), 60,
                             "a drift check over all the unchanged rows")
            column = list(data.feature_names).index(SHIFTED)
            shifted = data.data[rng.integers(0, len(data.target), WINDOW_ROWS)].copy()
            shifted[:, column] += 2 * data.data[:, column].std()
            lines_before = len(mesh.lines)
            send(stub, shifted, "shifted")
            sent_at = time.monotonic()
            alerts = wait_for(lambda: drift_state(models)[1], 30, "a drift alert after the shifted rows")
            took = time.monotonic() - sent_at
            time.sleep(2.5)  # two more checks: nothing else may join in
            status, alerts = drift_state(models)
            metrics = scrape_recorder(mesh)
            from meshserve.v1 import control_pb2 as cpb
            from meshserve.v1 import control_pb2_grpc as cpb_grpc

            answer = cpb_grpc.ControlStub(channel).GetDrift(
                cpb.GetDriftRequest(model="breast-cancer", alerts_only=True), timeout=30)
            control = json.loads(answer.drift_json)
    finally:
        mesh.stop()
    return {"metrics": metrics, "models": models, "quiet": quiet, "status": status, "alerts": alerts, "took": took,
            "log": mesh.lines, "lines_before": lines_before, "control": control}


def test_unchanged_rows_from_the_training_distribution_raise_no_alert(drifted):
    status, open_alerts = drifted["quiet"]
    assert open_alerts == []
    time_window = [r for r in status if r["window_kind"] == "time"]
    assert len(time_window) == 33  # 30 input features, the label, two probabilities
    assert all(not r["alerting"] for r in status)
    assert max(r["score"] for r in time_window) < 0.1, "PSI of unchanged data is far below the threshold"
    assert not any("drift alert" in line for line in drifted["log"][:drifted["lines_before"]])


def test_one_shifted_feature_raises_an_alert_naming_it_and_no_other(drifted):
    alerts = drifted["alerts"]
    assert {a["feature"] for a in alerts} == {SHIFTED}
    assert {(a["model"], a["version"], a["role"], a["tensor"]) for a in alerts} == {
        ("breast-cancer", "1", "primary", "features")}
    assert "rows" in {a["window_kind"] for a in alerts}, "the count window holding the shifted rows fires"
    assert all(a["score"] >= a["threshold"] == 0.2 for a in alerts)
    assert drifted["took"] < 20, "raised within a few checks (one a second here) of the shifted rows"
    alerting = {r["feature"] for r in drifted["status"] if r["alerting"]}
    assert alerting == {SHIFTED}
    logged = [line for line in drifted["log"] if "drift alert:" in line]
    assert logged and all(f'feature="{SHIFTED}"' in line and "model=breast-cancer version=1 role=primary" in line
                          and "threshold=0.2" in line and "window=" in line for line in logged)


def test_the_recorder_exports_the_drift_scores_the_prometheus_rules_read(drifted):
    labels = f'feature="{SHIFTED}",model="breast-cancer",role="primary",version="1",window="rows"'
    lines = drifted["metrics"].splitlines()
    assert f"meshserve_drift_alerting{{{labels}}} 1.0" in lines
    assert f"meshserve_drift_threshold{{{labels}}} 0.2" in lines
    alerting = [line for line in lines if line.startswith("meshserve_drift_alerting{") and line.endswith(" 1.0")]
    assert len(alerting) == len(drifted["alerts"]) and all(f'feature="{SHIFTED}"' in line for line in alerting)
    assert any(line.startswith('meshserve_drift_last_check_timestamp_seconds{model="breast-cancer"}') for line in lines)


def test_meshserve_drift_lists_the_alert_and_exits_3(drifted, tmp_path):
    models = drifted["models"]
    result = subprocess.run(meshserve_argv("drift", "breast-cancer", "--store", str(models), "--json"),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    assert {r["feature"] for r in report["columns"] if r["alerting"]} == {SHIFTED}
    assert report["alerts"] and all(SHIFTED in a for a in report["alerts"])
    assert {a["feature"] for a in report["monitor_alerts"]} == {SHIFTED}
    text = subprocess.run(meshserve_argv("drift", "breast-cancer", "--store", str(models)),
                          capture_output=True, text=True, timeout=120, check=False)
    assert text.returncode == 3 and f'ALERT: model=breast-cancer version=1 role=primary feature="{SHIFTED}"' in text.stdout


def test_the_drift_report_renders_in_a_real_browser_with_its_histograms(drifted, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (scripts/setup.d/70-reports.sh installs it)")
    report_path = tmp_path / "drift.html"
    made = subprocess.run(meshserve_argv("drift", "breast-cancer", "--store", str(drifted["models"]), "--html",
                                         str(report_path)), capture_output=True, timeout=120, check=False)
    assert made.returncode == 3, made.stderr  # 3: a column drifted
    page = report_path.read_text()
    assert page.count("<svg") == 33 and "training baseline" in page and f"{SHIFTED}: PSI" in page
    shot = tmp_path / "drift.png"
    profile = tempfile.mkdtemp(prefix="chromium-")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                    "--window-size=1100,2400", f"--screenshot={shot}", report_path.as_uri()],
                   capture_output=True, timeout=60, check=False)
    shutil.rmtree(profile, ignore_errors=True)
    assert shot.is_file() and shot.stat().st_size > 10_000, "the page did not render"
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    blue = ((pixels[..., 2] - pixels[..., 0]) > 80).sum()  # the baseline's bars
    red = ((pixels[..., 0] - pixels[..., 2]) > 80).sum()  # the live bars and the alert box's border
    assert blue > 2000 and red > 2000, "no histogram bars in the rendered page"


def test_the_prometheus_drift_rules_are_valid():
    rules = ROOT / "compose" / "prometheus" / "drift-alerts.yml"
    groups = yaml.safe_load(rules.read_text())["groups"]
    exprs = [rule["expr"] for group in groups for rule in group["rules"]]
    assert len(exprs) == 3 and all("meshserve_drift_" in e for e in exprs)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus): the rules were only parsed")
    for check in (["check", "rules", str(rules)], ["test", "rules", str(rules.with_suffix(".test.yml"))]):
        result = subprocess.run([promtool, *check], capture_output=True, text=True, timeout=60,
                                cwd=rules.parent, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_control_api_lists_the_alerting_columns_and_the_alerts(drifted):
    control = drifted["control"]
    assert control["columns"] and {c["feature"] for c in control["columns"]} == {SHIFTED}
    assert any(a["feature"] == SHIFTED for a in control["alerts"])
