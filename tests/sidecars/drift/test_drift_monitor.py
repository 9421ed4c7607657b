"""The drift monitor over a real store (SQLite, and PostgreSQL where it is installed): alerts name
the shifted column only, survive a new monitor (a restarted recorder), and clear once the data is
back to normal."""

import json
import logging

import numpy as np
import pytest
from meshserve.sidecars.drift.baseline import compute_baseline
from meshserve.sidecars.drift.drift_tables import open_alert_messages
from meshserve.sidecars.drift.monitor import DriftMonitor
from meshserve.sidecars.drift.plan import DriftPolicy, ModelPlan
from meshserve.sidecars.drift.report import page
from meshserve.sidecars.records.store import PostgresStore, SQLiteStore
from postgres_server import PostgresServer, postgres_bin
from sklearn.datasets import load_iris

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROWS_PER_REQUEST = 50


@pytest.fixture(scope="module")
def postgres():
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed here (scripts/setup.d/60-records.sh installs it)")
    server = PostgresServer().start()
    yield server
    server.stop()


def open_test_store(kind, tmp_path, request):
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "records.db")
    import psycopg

    url = request.getfixturevalue("postgres").url
    with psycopg.connect(url, autocommit=True) as connection:  # each test starts from an empty database
        connection.execute("DROP TABLE IF EXISTS records, packages, spool_offsets, outcomes, drift_status, "
                           "drift_alerts")
    return PostgresStore(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def setting(tmp_path, request):
    data = load_iris()
    baseline = compute_baseline(
        [("input", "measurements", name, "FP32", data.data[:, j].tolist()) for j, name in enumerate(FEATURES)]
        + [("output", "species", "species", "BYTES", data.target_names[data.target].tolist())])
    path = tmp_path / "baseline.json"
    path.write_text(baseline.model_dump_json())
    store = open_test_store(request.param, tmp_path, request)
    plan = ModelPlan("iris", DriftPolicy(window_rows=1000, window_s=3600, min_samples=200), {"1": str(path)})
    yield store, plan, data
    store.close()


def ingest(store, rows, species, start, t, version="1", role="primary"):
    records = []
    for i in range(0, len(rows), ROWS_PER_REQUEST):
        chunk, names = rows[i:i + ROWS_PER_REQUEST], species[i:i + ROWS_PER_REQUEST]
        records.append({
            "request_id": f"r{start + i}", "slot": "answer" if role != "shadow" else f"shadow:{version}",
            "time": t + i * 1e-3, "side": "adapter", "model": "iris", "version": version, "role": role, "digest": "d", "training_data_sha256": "", "code_revision": "",
            "trace_id": "", "code": "OK", "error": "", "latency_s": 0.001, "batch_size": None, "timings": {},
            "inputs": {"measurements": {"datatype": "FP32", "shape": [len(chunk), 4], "features": FEATURES,
                                        "values": np.asarray(chunk, dtype=np.float32).tolist()}},
            "outputs": {"species": {"datatype": "BYTES", "shape": [len(chunk)], "values": list(names)}}})
    store.ingest(records, [], {})


def draw(data, n, seed):
    index = np.random.default_rng(seed).integers(0, len(data.target), n)
    return data.data[index].copy(), data.target_names[data.target[index]].tolist()


def test_shifted_column_alerts_alone_persists_and_clears(setting, caplog):
    store, plan, data = setting
    now = 1_000_000.0
    rows, species = draw(data, 5000, 1)
    ingest(store, rows, species, 0, now - 100)
    monitor = DriftMonitor(store, [plan], every_s=30, max_rows=50_000)
    results = monitor.check(plan, now)
    assert results and not [r for r in results if r.alerting], [r.message() for r in results if r.alerting]
    assert max(r.comparison.psi for r in results) < 0.1

    shifted, species = draw(data, 1000, 2)
    std = data.data[:, 1].std()
    shifted[:, 1] += 2 * std
    ingest(store, shifted, species, 10_000, now - 50)
    with caplog.at_level(logging.WARNING, logger="meshserve.drift"):
        results = DriftMonitor(store, [plan], every_s=30, max_rows=50_000).check(plan, now)
    alerting = {(r.feature, r.window.kind) for r in results if r.alerting}
    assert {feature for feature, _ in alerting} == {"sepal width (cm)"}
    assert ("sepal width (cm)", "rows") in alerting
    logged = [m for m in caplog.messages if m.startswith("drift alert:")]
    assert logged and all('feature="sepal width (cm)"' in m and "model=iris version=1 role=primary" in m
                          and "threshold=0.2" in m and "window=" in m for m in logged)

    restarted = DriftMonitor(store, [plan], every_s=30, max_rows=50_000)  # a new recorder: the alert is still open
    assert {a["feature"] for a in restarted.tables.open_alerts("iris")} == {"sepal width (cm)"}
    held = open_alert_messages(store, "iris", "1")  # what a progressive rollout holds a candidate for
    assert held and all('feature="sepal width (cm)"' in m for m in held)
    assert open_alert_messages(store, "iris", "2") == []
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="meshserve.drift"):
        restarted.check(plan, now + 1)
    assert not [m for m in caplog.messages if m.startswith("drift alert:")], "an open alert is not raised twice"

    rows, species = draw(data, 1000, 3)
    ingest(store, rows, species, 20_000, now + 10)
    restarted.check(plan, now + 4000)  # the time window has moved past the shifted rows
    assert restarted.tables.open_alerts("iris") == []
    assert len(restarted.tables.alerts("iris")) == len(alerting)

    status = restarted.tables.status("iris")
    html = page("iris", status, [], restarted.tables.alerts("iris"))
    assert html.count("<svg") == 5 and "training baseline" in html
    json.dumps(status)


def test_an_ignored_column_is_never_judged(setting):
    store, plan, data = setting
    shifted, species = draw(data, 1000, 4)
    shifted[:, 1] += 5.0
    ingest(store, shifted, species, 0, 999_000.0)
    plan = ModelPlan("iris", DriftPolicy(ignore=("sepal width (cm)",)), plan.baselines)
    results = DriftMonitor(store, [plan], every_s=30, max_rows=50_000).check(plan, 1_000_000.0)
    assert results and "sepal width (cm)" not in {r.feature for r in results}
    assert not [r for r in results if r.alerting]


def test_each_version_and_role_is_judged_on_its_own_rows(setting):
    store, plan, data = setting
    rows, species = draw(data, 1000, 5)
    ingest(store, rows, species, 0, 999_000.0)  # version 1, primary: unchanged
    shifted, species = draw(data, 1000, 6)
    shifted[:, 2] += 2 * data.data[:, 2].std()
    ingest(store, shifted, species, 100_000, 999_000.0, version="2", role="shadow")
    plan = ModelPlan("iris", plan.policy, {"1": plan.baselines["1"], "2": plan.baselines["1"]})
    results = DriftMonitor(store, [plan], every_s=30, max_rows=50_000).check(plan, 1_000_000.0)
    assert {(r.version, r.role) for r in results} == {("1", "primary"), ("2", "shadow")}
    assert {(r.version, r.role, r.feature) for r in results if r.alerting
            and r.io == "input"} == {("2", "shadow", "petal length (cm)")}
