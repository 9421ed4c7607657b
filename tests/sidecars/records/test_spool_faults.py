"""The spool survives every fault of its disk: full, read-only, covered, deleted. It never writes
to a descriptor it does not own, it resumes by itself within a second of the fault clearing,
and every record it could not write is counted and reaches the store as a loss.

The disk faults are real: a small tmpfs mounted for the test (skipped, with the reason, where
this process may not mount)."""

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from meshserve.sidecars.records.losses import RECORDS_LOST
from meshserve.sidecars.records.observer import RecordObserver
from meshserve.sidecars.records.recorder import Recorder
from meshserve.sidecars.records.spool import RETRY_EVERY_S, SpoolFault, SpoolWriter, read_frames, spool_files
from meshserve.sidecars.records.store import SQLiteStore
from small_disk import fill
from small_disk import small_disk as mounted_disk


def record(request_id: str, size: int = 100) -> dict:
    return {"kind": "record", "request_id": request_id, "slot": "answer", "trace_id": "", "time": time.time(),
            "side": "adapter", "model": "m", "version": "1", "role": "primary", "digest": "d",
            "training_data_sha256": "", "code_revision": "", "code": "OK", "error": "", "latency_s": 0.001,
            "batch_size": None, "timings": {}, "inputs": {"x": "v" * size}, "outputs": {}}


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    with mounted_disk(tmp_path, "512k") as disk:
        yield disk


def written_ids(folder: Path) -> list[str]:
    return [r["request_id"] for f in spool_files(folder) for _, r in read_frames(f.path, 0) if r.get("kind") == "record"]


def appended_until_refused(writer: SpoolWriter, prefix: str, limit: int = 10_000) -> tuple[list[str], SpoolFault]:
    written = []
    for i in range(limit):
        try:
            writer.append(record(f"{prefix}{i}"))
        except SpoolFault as fault:
            return written, fault
        written.append(f"{prefix}{i}")
    raise AssertionError("the disk never refused")


def appended_after_recovery(writer: SpoolWriter, request_id: str, within_s: float = 1.0) -> float:
    started = time.monotonic()
    while True:
        try:
            writer.append(record(request_id))
            return time.monotonic() - started
        except SpoolFault:
            assert time.monotonic() - started < within_s, "recording did not resume within a second"
            time.sleep(0.02)


def test_a_full_disk_is_refused_cleanly_and_recording_resumes_once_space_is_freed(small_disk):
    spool = small_disk / "spool"
    writer = SpoolWriter(spool, "adapter", file_bytes=64 * 1024, max_bytes=1 << 30)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 300 * 1024)
    written, fault = appended_until_refused(writer, "before")
    assert fault.reason == "disk_full"
    assert written_ids(spool) == written  # no torn frame, nothing half written
    filler.unlink()
    appended_after_recovery(writer, "after")
    assert written_ids(spool) == [*written, "after"]


def test_a_refused_open_leaves_no_descriptor_behind_to_be_written_into_a_socket(small_disk, tmp_path):
    spool = small_disk / "spool"
    writer = SpoolWriter(spool, "adapter", file_bytes=1 << 20, max_bytes=1 << 30)
    writer.append(record("before"))
    mount("--bind", "-o", "ro", str(tmp_path), str(spool))  # the writer's file is covered; no new one can be made
    pairs = []
    try:
        with pytest.raises(SpoolFault):
            writer.append(record("refused"))
        # The kernel hands out the lowest free numbers: sockets now take the one the writer gave up.
        pairs = [socket.socketpair() for _ in range(8)]
        for i in range(20):
            with pytest.raises(SpoolFault):
                writer.append(record(f"refused{i}"))
            time.sleep(RETRY_EVERY_S / 4)
    finally:
        subprocess.run(["umount", str(spool)], check=True)
    try:
        appended_after_recovery(writer, "after")
        for _, theirs in pairs:
            theirs.setblocking(False)
            with pytest.raises(BlockingIOError):
                theirs.recv(1)  # not one byte of a record
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
    assert written_ids(spool) == ["before", "after"]


def test_a_read_only_folder_mounted_over_the_spool_is_noticed_and_left_when_it_goes(small_disk, tmp_path):
    spool = small_disk / "spool"
    writer = SpoolWriter(spool, "adapter", file_bytes=1 << 20, max_bytes=1 << 30)
    writer.append(record("before"))
    mount("--bind", "-o", "ro", str(tmp_path), str(spool))  # what a read-only bind mount does
    try:
        with pytest.raises(SpoolFault) as refused:
            writer.append(record("during"))
        assert refused.value.reason == "read_only"
        assert not writer.writable()
    finally:
        subprocess.run(["umount", str(spool)], check=True)
    appended_after_recovery(writer, "after")
    assert writer.writable()
    assert written_ids(spool) == ["before", "after"]


def test_a_deleted_spool_folder_is_made_again(tmp_path):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "adapter", file_bytes=1 << 20, max_bytes=1 << 30)
    writer.append(record("before"))
    shutil.rmtree(spool)
    writer.append(record("after"))  # not into the deleted file, where no recorder would find it
    assert written_ids(spool) == ["after"]
    assert oct(spool.stat().st_mode & 0o777) == oct(0o700)


def lost_count(reason: str) -> float:
    return RECORDS_LOST.labels("adapter", "m", "1", reason)._value.get()


def test_losses_are_counted_refused_in_compliance_mode_and_reach_the_store(small_disk, tmp_path, monkeypatch):
    from meshserve.core.errors import ModelUnavailable
    from meshserve.core.settings import Settings

    settings = Settings(records_on_failure="refuse")
    spool = small_disk / "spool"
    writer = SpoolWriter(spool, "m-1", file_bytes=1 << 20, max_bytes=1 << 30)
    observer = RecordObserver(writer, lambda model, version: None, settings, side="adapter")
    before = lost_count("disk_full")
    observer.observe(_events(1, "first")[0])
    filler = fill(small_disk)
    fitted = 0
    while True:  # what still fits in the file's last page
        try:
            observer.observe(_events(1, f"fits{fitted}-")[0])
        except ModelUnavailable:
            break
        fitted += 1
    refused = 1
    for event in _events(3):
        with pytest.raises(ModelUnavailable):
            observer.observe(event)
        refused += 1
    assert not observer.serving()  # health reports NOT_SERVING during the fault
    assert lost_count("disk_full") - before == refused == observer.failed
    filler.unlink()
    time.sleep(RETRY_EVERY_S)
    assert observer.serving()
    observer.observe(_events(1, "late")[0])
    store = SQLiteStore(tmp_path / "records.db")
    Recorder(spool, store).drain_once()
    assert store.count() == 2 + fitted
    assert [(r["model"], r["reason"], r["count"]) for r in store.losses()] == [("m", "disk_full", refused)]


def _events(count: int, prefix: str = "r") -> list:
    import grpc

    from meshserve.core.mesh_protocol import CallInfo
    from meshserve.core.observers import InferenceEvent

    events = []
    for i in range(count):
        event = InferenceEvent(side="adapter", call=CallInfo(request_id=f"{prefix}{i}"), model="m", version="1")
        event.code = grpc.StatusCode.OK
        events.append(event)
    return events


def test_the_store_and_its_folder_are_private(tmp_path):
    SQLiteStore(tmp_path / "records" / "records.db").close()
    folder = tmp_path / "records"
    assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
    for path in folder.iterdir():
        assert oct(path.stat().st_mode & 0o777) == oct(0o600), path
