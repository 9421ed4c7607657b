"""Spool files and the store: frames survive a torn tail, the recorder stores each record once."""

import json
import os
import struct
import zlib

import pytest

from meshserve.sidecars.records.recorder import Recorder
from meshserve.sidecars.records.spool import SpoolFull, SpoolWriter, read_frames, spool_files
from meshserve.sidecars.records.store import SQLiteStore, open_store


def record(request_id, code="OK", side="adapter", slot="answer", version="1", t=1.0):
    return {"kind": "record", "request_id": request_id, "slot": slot, "trace_id": "", "time": t, "side": side,
            "model": "m", "version": version, "role": "primary" if side == "adapter" else "", "digest": "d",
            "training_data_sha256": "", "code_revision": "", "code": code, "error": "" if code == "OK" else "boom",
            "latency_s": 0.001, "batch_size": None, "timings": {}, "inputs": {}, "outputs": {}}


def test_a_torn_last_frame_is_skipped_and_the_complete_ones_are_read(tmp_path):
    writer = SpoolWriter(tmp_path, "a", file_bytes=1 << 20, max_bytes=1 << 30)
    for i in range(3):
        writer.append(record(f"r{i}"))
    path = writer.path
    writer.close()
    with open(path, "ab") as handle:  # a writer killed in the middle of its last write
        handle.write(b"\x50\x00\x00\x00\x01\x02\x03\x04{\"kind\":")
    ids = [r["request_id"] for _, r in read_frames(path, 0)]
    assert ids == ["r0", "r1", "r2"]


def test_a_writer_at_its_bound_refuses_rather_than_growing(tmp_path):
    writer = SpoolWriter(tmp_path, "a", file_bytes=4096, max_bytes=1 << 20)
    big = record("r") | {"error": "x" * 200_000}
    with pytest.raises(SpoolFull):
        for _ in range(10):
            writer.append(big)
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 1 << 20


def test_the_answer_beats_an_error_and_the_adapter_beats_the_router_whatever_the_order(tmp_path):
    store = SQLiteStore(tmp_path / "r.db")
    store.ingest([record("a", code="UNAVAILABLE", side="router")], [], {})
    store.ingest([record("a", code="OK")], [], {})
    store.ingest([record("a", code="UNAVAILABLE")], [], {})  # a retry's failed first try, read late
    store.ingest([record("a", slot="shadow:2", version="2")], [], {})
    rows = store.records_for("a")
    assert [(r["slot"], r["code"], r["side"]) for r in rows] == [("answer", "OK", "adapter"),
                                                                 ("shadow:2", "OK", "adapter")]


def test_the_recorder_stores_every_record_once_across_restarts_and_deletes_finished_files(tmp_path):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "adapter", file_bytes=2048, max_bytes=1 << 30)
    for i in range(40):
        writer.append(record(f"r{i}"))
    assert len(spool_files(spool)) > 3
    url = f"sqlite:///{tmp_path / 'r.db'}"
    Recorder(spool, open_store(url)).drain_once()
    for i in range(40, 60):
        writer.append(record(f"r{i}"))
    # A recorder that starts over (its predecessor was killed) reads on from the committed offsets.
    again = Recorder(spool, open_store(url))
    again.drain_once()
    again.drain_once()
    store = open_store(url)
    assert store.count() == 60
    assert {r for r, _ in store.request_ids()} == {f"r{i}" for i in range(60)}
    remaining = spool_files(spool)
    assert [f.path for f in remaining] == [writer.path], "finished files are deleted once stored"
    writer.close()


def test_a_dead_writers_last_file_is_read_to_its_end_and_removed(tmp_path):
    spool = tmp_path / "spool"
    pid = os.fork()
    if pid == 0:
        writer = SpoolWriter(spool, "adapter", file_bytes=1 << 20, max_bytes=1 << 30)
        writer.append(record("from-the-dead"))
        os._exit(0)
    os.waitpid(pid, 0)
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    Recorder(spool, store).drain_once()
    assert [r["request_id"] for r in store.records_for("from-the-dead")] == ["from-the-dead"]
    assert spool_files(spool) == []


def test_retention_removes_records_older_than_the_limit_and_keeps_the_store_below_its_size(tmp_path):
    store = SQLiteStore(tmp_path / "r.db")
    now = __import__("time").time()
    store.ingest([record(f"old{i}", t=now - 3 * 86400) for i in range(5)] +
                 [record(f"new{i}", t=now) for i in range(5)], [], {})
    Recorder(tmp_path / "spool", store, retention_days=2).apply_retention()
    assert sorted(r for r, _ in store.request_ids()) == [f"new{i}" for i in range(5)]
    store.ingest([record(f"bulk{i}", t=now + i) | {"error": "x" * 2000} for i in range(3000)], [], {})
    Recorder(tmp_path / "spool", store, retention_bytes=2 * 1024 * 1024).apply_retention()
    assert store.size_bytes() <= 2 * 1024 * 1024
    left = {r for r, _ in store.request_ids()}
    assert "bulk2999" in left and "new0" not in left, "the oldest go first"


def test_the_store_keeps_a_spooled_body_as_written_and_reads_frames_without_one(tmp_path):
    writer = SpoolWriter(tmp_path, "a", file_bytes=1 << 20, max_bytes=1 << 30)
    writer.append(record("new") | {"inputs": {"x": {"datatype": "FP64", "shape": [1, 2], "values": [[1.5, 2.5]]}}})
    path = writer.path
    writer.close()
    with open(path, "ab") as handle:  # a frame as written before bodies were split off: one JSON document
        payload = json.dumps(record("old") | {"outputs": {"y": {"values": [7]}}}).encode()
        handle.write(struct.pack("<II", len(payload), zlib.crc32(payload)) + payload)
    store = SQLiteStore(tmp_path / "r.db")
    store.ingest([r for _, r in read_frames(path, 0)], [], {})
    new, old = store.records_for("new")[0], store.records_for("old")[0]
    assert new["inputs"]["x"]["values"] == [[1.5, 2.5]] and new["outputs"] == {}
    assert old["outputs"] == {"y": {"values": [7]}} and old["inputs"] == {}


@pytest.mark.parametrize("newest_first", [False, True])
def test_records_read_a_page_at_a_time_come_once_each_in_order_across_equal_times(tmp_path, newest_first):
    store = SQLiteStore(tmp_path / "r.db")
    # Pages of 3 over 10 records, most sharing a time: a page boundary falls inside a run of ties.
    records = [record(f"r{i}", t=1.0 + (i // 4)) for i in range(10)]
    store.ingest(records, [], {})
    read = [(r["time"], r["request_id"]) for r in store.query("m", newest_first=newest_first, batch=3)]
    assert read == sorted(read, reverse=newest_first)
    assert sorted(r for _, r in read) == sorted(f"r{i}" for i in range(10))
    assert len([r["request_id"] for r in store.query("m", newest_first=newest_first, batch=3, limit=7)]) == 7
