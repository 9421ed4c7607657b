"""The records store's public query API the console reads through: the same answers from SQLite
and PostgreSQL (when Debian's postgresql is installed), and refusals outside its bounds."""

from __future__ import annotations

import pytest
from postgres_server import PostgresServer, postgres_bin

from meshserve.console.series import quantile_of, series
from meshserve.sidecars.records.store import LATENCY_BOUNDS, MAX_PAGE, QueryOutOfBounds, open_store

T0 = 1_800_000_000.0


def record(i: int, version: str, role: str, latency: float, code: str = "OK", trace: str = "") -> dict:
    return {"request_id": f"r{i}", "slot": "answer", "time": T0 + i * 0.5, "side": "adapter", "model": "m",
            "version": version, "role": role, "digest": f"d{version}", "training_data_sha256": "", "code_revision": "",
            "trace_id": trace, "code": code, "error": "" if code == "OK" else "boom", "latency_s": latency,
            "batch_size": 2 if i % 4 == 0 else None, "inputs": {}, "outputs": {}}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'records.db'}")
        yield opened
        opened.close()
        return
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (scripts/setup.d/60-records.sh installs it)")
    server = PostgresServer().start()
    try:
        opened = open_store(server.url)
        yield opened
        opened.close()
    finally:
        server.stop()


def test_traffic_latency_and_batches_are_counted_per_version_role_and_step(store):
    # 40 s: version 1 answers every record but each 10th (version 2, canary); 3 errors of version 1.
    records = [record(i, "2" if i % 10 == 0 else "1", "canary" if i % 10 == 0 else "primary",
                      0.004 if i % 10 else 0.040, "INTERNAL" if i in (3, 5, 7) else "OK", trace="t1" if i < 2 else "")
               for i in range(80)]
    store.ingest(records, [{"digest": "d1", "model": "m", "version": "1", "signature": {"outputs": []}}], {})
    traffic = store.traffic("m", T0, T0 + 40, 10)
    per = {(r["version"], r["role"], int(r["bucket"]), r["code"]): int(r["requests"]) for r in traffic}
    assert per[("1", "primary", 0, "INTERNAL")] == 3 and per[("1", "primary", 0, "OK")] == 15
    assert per[("2", "canary", 3, "OK")] == 2 and sum(per.values()) == 80
    drawn = series(traffic, store.latency_bins("m", T0, T0 + 40, 10), T0, 10, 4)
    by_key = {(s["version"], s["role"]): s for s in drawn["series"]}
    assert by_key[("1", "primary")]["errors_by_code"] == {"INTERNAL": 3}
    assert by_key[("1", "primary")]["requests_per_s"][1] == pytest.approx(1.8)
    assert 3.0 < by_key[("1", "primary")]["p50_ms_window"] <= 5.0 and 30.0 < by_key[("2", "canary")]["p99_ms_window"] <= 50.0
    sizes = {(r["version"], r["batch_size"]): int(r["n"]) for r in store.batch_sizes("m", T0, T0 + 40)}
    assert sizes[("1", 2)] + sizes.get(("2", 2), 0) == 20
    newest = store.recent_records("m", limit=5)
    assert [r["request_id"] for r in newest] == ["r79", "r78", "r77", "r76", "r75"]
    assert [r["request_id"] for r in store.recent_records("m", limit=2, before=newest[-1]["time"])] == ["r74", "r73"]
    assert {r["request_id"] for r in store.records_by_trace("t1")} == {"r0", "r1"}
    assert store.answer_digest("r0") == "d2" and store.answer_digest("nope") is None
    assert store.latest_package("m")["digest"] == "d1" and store.latest_package("other") is None


def test_reads_outside_the_bounds_are_refused_naming_the_bound(store):
    with pytest.raises(QueryOutOfBounds, match="longer than"):
        store.traffic("m", T0, T0 + 40 * 86400, 86400)
    with pytest.raises(QueryOutOfBounds, match="more than 720 steps"):
        store.latency_bins("m", T0, T0 + 3600, 1)
    with pytest.raises(QueryOutOfBounds, match="must come after"):
        store.batch_sizes("m", T0, T0)
    with pytest.raises(QueryOutOfBounds, match=f"at most {MAX_PAGE}"):
        store.recent_records("m", limit=MAX_PAGE + 1)


def test_a_quantile_is_read_inside_its_latency_bin():
    # 100 latencies in the bin up to LATENCY_BOUNDS[2]: the median lies halfway through it.
    assert quantile_of({2: 100}, 0.5) == pytest.approx((LATENCY_BOUNDS[1] + LATENCY_BOUNDS[2]) / 2)
    assert quantile_of({}, 0.5) is None and quantile_of({len(LATENCY_BOUNDS): 3}, 0.99) == LATENCY_BOUNDS[-1]
