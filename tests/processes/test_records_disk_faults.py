"""A real adapter whose spool disk fills up or turns read-only under traffic: every answered
request is either recorded exactly once or counted as lost, the count is the true loss, no
record reaches a client's connection, and recording resumes by itself once the disk is back.

The disk is a small tmpfs mounted by the test (skipped, with the reason, where this process
may not mount)."""

import subprocess
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES
from small_disk import fill
from small_disk import small_disk as mounted_disk
from meshserve.sidecars.records.recorder import Recorder
from meshserve.sidecars.records.store import SQLiteStore


@pytest.fixture
def small_disk(tmp_path):
    with mounted_disk(tmp_path, "2m") as disk:
        yield disk


def iris(request_id: str) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris-species", id=request_id,
                                   raw_input_contents=[np.ones((1, 4), np.float32).tobytes()])
    request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
    return request


def send(stub, prefix: str, count: int) -> tuple[list[str], list[grpc.StatusCode]]:
    answered, refused = [], []
    for i in range(count):
        request_id = f"{prefix}-{i}"
        try:
            response = stub.ModelInfer(iris(request_id), timeout=10)
        except grpc.RpcError as error:
            refused.append(error.code())
            continue
        assert response.id == request_id  # a whole, well-formed answer: nothing else on the connection
        answered.append(request_id)
    return answered, refused


def stored_and_lost(records: Path, store_path: Path) -> tuple[list[str], int]:
    store = SQLiteStore(store_path)
    Recorder(records / "spool", store).drain_once()
    ids = [r["request_id"] for r in store.query("iris-species")]
    lost = sum(row["count"] for row in store.losses())
    store.close()
    return ids, lost


def test_a_full_spool_disk_loses_exactly_what_it_reports_and_recording_resumes(adapter_factory, small_disk, tmp_path):
    records = small_disk / "records"
    adapter = adapter_factory(EXAMPLES / "iris_species", env={"MESHSERVE_RECORDS_DIR": str(records)})
    with grpc.insecure_channel(adapter.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        before, _ = send(stub, "before", 50)
        filler = fill(small_disk)
        during, refused = send(stub, "during", 200)
        assert not refused  # serve mode: answers go on
        filler.unlink()
        time.sleep(0.5)
        after, _ = send(stub, "after", 50)
    answered = before + during + after
    ids, lost = stored_and_lost(records, tmp_path / "records.db")
    assert len(ids) == len(set(ids)) and set(ids) <= set(answered)
    assert set(before + after) <= set(ids)
    assert lost == len(answered) - len(ids) > 0
    assert "records are being lost (disk_full)" in adapter.output
    assert "recording resumed" in adapter.output


def test_in_compliance_mode_a_read_only_spool_refuses_answers_says_not_serving_and_recovers(
        adapter_factory, small_disk, tmp_path):
    records = small_disk / "records"
    adapter = adapter_factory(EXAMPLES / "iris_species", env={
        "MESHSERVE_RECORDS_DIR": str(records), "MESHSERVE_RECORDS_ON_FAILURE": "refuse",
        "MESHSERVE_HEALTH_POLL_S": "0.1"})
    empty = tmp_path / "empty"
    empty.mkdir()
    spool = records / "spool"
    with grpc.insecure_channel(adapter.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        before, _ = send(stub, "before", 20)
        subprocess.run(["mount", "--bind", "-o", "ro", str(empty), str(spool)], check=True)
        try:
            during, refused = send(stub, "during", 20)
            assert not during and set(refused) == {grpc.StatusCode.UNAVAILABLE}
            time.sleep(0.5)
            assert health.Check(health_pb2.HealthCheckRequest(service="")).status == \
                health_pb2.HealthCheckResponse.NOT_SERVING
        finally:
            subprocess.run(["umount", str(spool)], check=True)
        deadline = time.monotonic() + 3
        while health.Check(health_pb2.HealthCheckRequest(service="")).status != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, "health did not come back within 3 s of the disk"
            time.sleep(0.05)
        after, refused_after = send(stub, "after", 20)
        assert len(after) == 20 and not refused_after
    ids, lost = stored_and_lost(records, tmp_path / "records.db")
    assert sorted(ids) == sorted(before + after)  # every answer recorded once; nothing refused was answered
    assert lost == 20
