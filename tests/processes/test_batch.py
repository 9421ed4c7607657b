"""Batch scoring through a real mesh: a 20,000-row file scored as the model scores it directly,
resumed after a SIGKILL with every row once and in order."""

from __future__ import annotations

import csv
import signal
import subprocess
import time
from pathlib import Path

import joblib
import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_breast_cancer

from meshserve.sidecars.records.store import open_store

from conftest import EXAMPLES, RunningProcess, meshserve_argv, start_mesh

pytestmark = pytest.mark.slow

ROWS = 20_000


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    models = tmp_path_factory.mktemp("batch-models")
    (models / "breast_cancer").symlink_to(EXAMPLES / "breast_cancer", target_is_directory=True)
    process = start_mesh(models, "--no-envoy")
    process.models = models
    yield process
    process.stop()


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> tuple[Path, np.ndarray]:
    data = load_breast_cancer()
    rng = np.random.default_rng(3)
    values = data.data[rng.integers(0, len(data.data), ROWS)] * rng.uniform(0.97, 1.03, (ROWS, 30))
    path = tmp_path_factory.mktemp("batch-input") / "applicants.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["applicant"] + list(data.feature_names))
        for i, row in enumerate(values):
            writer.writerow([f"a{i}"] + [repr(float(v)) for v in row])
    return path, values


def test_a_file_scored_through_the_mesh_equals_the_model_scoring_it_directly(mesh, rows, tmp_path):
    path, values = rows
    out = tmp_path / "scored.parquet"
    result = subprocess.run(meshserve_argv("batch", "breast-cancer", str(path), "-o", str(out), "--address",
                                           mesh.address), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"wrote {ROWS:,} scored rows" in result.stdout
    assert "rows" not in result.stderr or "/s" in result.stderr  # the progress line
    table = pq.read_table(out)
    assert table.num_rows == ROWS
    assert table.column("row").to_pylist() == list(range(ROWS))
    assert table.column("applicant").to_pylist()[:3] == ["a0", "a1", "a2"]
    model = joblib.load(EXAMPLES / "breast_cancer" / "model.joblib")
    assert np.array_equal(np.asarray(table.column("label").to_pylist()), model.predict(values))
    probabilities = np.stack([table.column("probabilities_0").to_numpy(), table.column("probabilities_1").to_numpy()],
                             axis=1)
    assert np.allclose(probabilities, model.predict_proba(values))
    chunk = 768 * 1024 // (30 * 8)  # 30 doubles a row: the automatic chunk size (meshserve/batch/job.py)
    assert len(set(table.column("request_id").to_pylist())) == -(-ROWS // chunk)

    # Each chunk's record holds its inputs whole (automatic chunks stay under the record's tensor limit).
    first = table.column("request_id")[0].as_py()
    store = open_store(f"sqlite:///{mesh.models / '.meshserve' / 'records' / 'records.db'}")
    deadline = time.monotonic() + 60
    while not (answers := [r for r in store.records_for(first) if r["slot"] == "answer"]):
        assert time.monotonic() < deadline, f"no record of {first} within 60 s"
        time.sleep(0.5)
    recorded = answers[0]["inputs"]["features"]
    assert "omitted" not in recorded, recorded.get("omitted")
    assert np.allclose(np.asarray(recorded["values"]), values[:chunk])


def test_a_job_killed_halfway_resumes_and_scores_every_row_once(mesh, rows, tmp_path):
    path, values = rows
    out = tmp_path / "scored.csv"
    argv = meshserve_argv("batch", "breast-cancer", str(path), "-o", str(out), "--address", mesh.address,
                          "--chunk-rows", "250", "--in-flight", "2")
    first = RunningProcess(argv)
    parts = out.with_name(out.name + ".parts")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("*.arrow"))) < 20:
        time.sleep(0.05)
    first.stop(signal.SIGKILL)
    done_before = len(list(parts.glob("*.arrow")))
    assert 0 < done_before < ROWS // 250, "killed halfway"
    second = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stderr
    with open(out, newline="") as handle:
        scored = list(csv.DictReader(handle))
    assert [int(r["row"]) for r in scored] == list(range(ROWS))
    assert [r["applicant"] for r in scored[:2]] == ["a0", "a1"]
    model = joblib.load(EXAMPLES / "breast_cancer" / "model.joblib")
    assert [int(r["label"]) for r in scored] == model.predict(values).tolist()
    assert not parts.exists()


def test_a_file_missing_a_feature_column_is_refused_naming_it(mesh, tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("mean radius,mean texture\n1.0,2.0\n")
    result = subprocess.run(meshserve_argv("batch", "breast-cancer", str(path), "-o", str(tmp_path / "o.csv"),
                                           "--address", mesh.address), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no column 'mean perimeter'" in result.stderr and "Traceback" not in result.stderr
