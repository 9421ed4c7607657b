"""Recorders of several pods share one store: spools with the same file names never mix offsets."""

from meshserve.sidecars.records.recorder import Recorder
from meshserve.sidecars.records.spool import SpoolWriter
from meshserve.sidecars.records.store import open_store


def record(request_id):
    return {"kind": "record", "request_id": request_id, "slot": "answer", "trace_id": "", "time": 1.0,
            "side": "adapter", "model": "m", "version": "1", "role": "primary", "digest": "d",
            "training_data_sha256": "", "code_revision": "", "code": "OK", "error": "", "latency_s": 0.001,
            "batch_size": None, "timings": {}, "inputs": {}, "outputs": {}}


def test_two_pods_with_the_same_spool_file_names_both_get_every_record_stored(tmp_path):
    url = f"sqlite:///{tmp_path / 'records.db'}"
    writers = {}
    for pod, count in (("pod-a", 30), ("pod-b", 5)):
        # Same label and the same pid (as in two fresh pid namespaces): the same file names.
        writers[pod] = SpoolWriter(tmp_path / pod, "router", file_bytes=1 << 20, max_bytes=1 << 30)
        for i in range(count):
            writers[pod].append(record(f"{pod}-{i}"))
    assert writers["pod-a"].path.name == writers["pod-b"].path.name
    Recorder(tmp_path / "pod-a", open_store(url), source="ns/pod-a").drain_once()
    for i in range(5, 20):
        writers["pod-b"].append(record(f"pod-b-{i}"))
    Recorder(tmp_path / "pod-b", open_store(url), source="ns/pod-b").drain_once()
    stored = {r for r, _ in open_store(url).request_ids()}
    assert stored == {f"pod-a-{i}" for i in range(30)} | {f"pod-b-{i}" for i in range(20)}
    for writer in writers.values():
        writer.close()
