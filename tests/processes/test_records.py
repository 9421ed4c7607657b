"""Prediction records through a real mesh: every answer and refusal recorded once, through
SIGKILLs of the adapter and the recorder; PII never in clear; a recorder that stops never
blocks a prediction; huge inputs recorded with a marker; compliance mode refuses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import threading
import time
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES, ROOT, meshserve_argv, start_mesh, wait_for
from meshserve.sidecars.records.store import open_store

pytestmark = pytest.mark.slow

SECRET = "alice.secret-7f3a@example.com"
PII_KEY = "test-key-never-on-disk-91c2"


def iris_request(request_id: str, rows: int = 1) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris-species", id=request_id,
                                   raw_input_contents=[np.full((rows, 4), 5.0, np.float32).tobytes()])
    request.inputs.add(name="measurements", datatype="FP32", shape=[rows, 4])
    return request


def bad_request(request_id: str) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris-species", id=request_id,
                                   raw_input_contents=[np.ones((1, 3), np.float32).tobytes()])
    request.inputs.add(name="measurements", datatype="FP32", shape=[1, 3])
    return request


def flaky_request(request_id: str, rows: int) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="flaky", id=request_id,
                                   raw_input_contents=[np.ones((rows, 2)).tobytes()])
    request.inputs.add(name="x", datatype="FP64", shape=[rows, 2])
    return request


def child_pid(mesh, pattern: str) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == mesh.proc.pid and pattern in cmdline:
            return int(entry.name)
    raise AssertionError(f"no child of the mesh runs {pattern}:\n{mesh.output[-3000:]}")


def _try_child_pid(mesh, pattern: str) -> int | None:
    try:
        return child_pid(mesh, pattern)
    except AssertionError:
        return None



def drained(records_dir: Path) -> bool:
    """Every spool file is consumed: nothing left but the live writers' fully stored files."""
    store = open_store(f"sqlite:///{records_dir / 'records.db'}")
    try:
        offsets = store.offsets()
    finally:
        store.close()
    return all(offsets.get(p.name, 0) >= p.stat().st_size for p in (records_dir / "spool").glob("*.spool"))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("record-models")
    (folder / "iris").symlink_to(EXAMPLES / "iris_species", target_is_directory=True)
    (folder / "flaky").symlink_to(ROOT / "tests" / "models" / "flaky", target_is_directory=True)
    contact = folder / "contact"
    contact.mkdir()
    (contact / "contact.py").write_text(textwrap.dedent("""
        import numpy as np

        def score(inputs):
            emails = inputs["email"].reshape(-1)
            return {"length": np.array([len(e) for e in emails], dtype=np.int64)}
    """))
    (contact / "model.yaml").write_text(yaml.safe_dump({
        "name": "contact", "version": "1", "runtime": "python", "entrypoint": "contact:score",
        "provenance": {"training_data_sha256": "ab" * 32, "training_data": "s3://bucket/contacts-2026-11.csv",
                       "code_revision": "9e6b83a"},
        "signature": {"inputs": [{"name": "email", "datatype": "BYTES", "shape": [-1], "pii": True}],
                      "outputs": [{"name": "length", "datatype": "INT64", "shape": [-1]}]}}))
    return folder


@pytest.fixture(scope="module")
def mesh(models, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("record-run")
    process = start_mesh(models, "--run-dir", str(run_dir), env={"MESHSERVE_RECORDS_PII_KEY": PII_KEY})
    process.run_dir = run_dir
    yield process
    process.stop()


@pytest.fixture(scope="module")
def records_dir(models) -> Path:
    return models / ".meshserve" / "records"


def store_of(records_dir: Path):
    return open_store(f"sqlite:///{records_dir / 'records.db'}")


def test_every_answer_and_refusal_has_exactly_one_record_through_kills_of_adapter_and_recorder(mesh, records_dir):
    outcomes: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(index: int) -> None:
        with grpc.insecure_channel(mesh.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            n = 0
            while not stop.is_set():
                n += 1
                request_id = f"c{index}-{n}-{uuid.uuid4().hex[:6]}"
                request = bad_request(request_id) if n % 10 == 0 else iris_request(request_id)
                try:
                    stub.ModelInfer(request, timeout=10)
                    outcome = "OK"
                except grpc.RpcError as exc:
                    outcome = exc.code().name
                with lock:
                    outcomes[request_id] = outcome

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(16)]
    for thread in threads:
        thread.start()
    kills = []
    for target in [str(EXAMPLES / "iris_species"), "meshserve.sidecars.records.recorder"] * 2 + \
            [str(EXAMPLES / "iris_species")]:
        time.sleep(3.0)
        pid = wait_for(lambda: _try_child_pid(mesh, target), 20, f"{target} is running again")
        os.kill(pid, signal.SIGKILL)
        kills.append((target, pid))
    time.sleep(3.0)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert len(kills) == 5
    answered = {r for r, outcome in outcomes.items() if outcome == "OK"}
    refused = {r for r, outcome in outcomes.items() if outcome == "INVALID_ARGUMENT"}
    assert len(answered) > 200 and len(refused) > 20, f"{len(answered)} answered, {len(refused)} refused"
    wait_for(lambda: drained(records_dir), 60, "the recorder drained every spool")
    store = store_of(records_dir)
    try:
        keys = [k for k in store.request_ids() if k[0].startswith("c")]
        ours = {request_id: None for request_id in outcomes}
        answers = [request_id for request_id, slot in keys if slot == "answer" and request_id in ours]
        assert len(answers) == len(set(answers)), "a request recorded twice"
        missing = set(outcomes) - set(answers)
        assert not missing, f"{len(missing)} of {len(outcomes)} requests have no record, e.g. {sorted(missing)[:3]}"
        for request_id in list(answered)[:50] + list(refused)[:50]:
            [record] = [r for r in store.records_for(request_id) if r["slot"] == "answer"]
            assert record["code"] == outcomes[request_id], record
    finally:
        store.close()


def test_what_the_front_refuses_itself_is_recorded_as_the_client_saw_it(mesh, records_dir):
    """Unknown models and versions, bodies that are not a ModelInferRequest: Envoy answers them
    without any adapter, and each is still one record, with the status and message the client got."""
    sent: dict[str, tuple[grpc.StatusCode, str]] = {}
    with grpc.insecure_channel(mesh.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        raw = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                  request_serializer=lambda body: body, response_deserializer=lambda body: body)
        unknown_model = iris_request("front-unknown-model")
        unknown_model.model_name = "no-such-model"
        unknown_version = iris_request("front-unknown-version")
        unknown_version.model_version = "99"
        for request in (unknown_model, unknown_version):
            with pytest.raises(grpc.RpcError) as refused:
                stub.ModelInfer(request, timeout=10)
            sent[request.id] = (refused.value.code(), refused.value.details())
        with pytest.raises(grpc.RpcError) as refused:  # not a protobuf message at all
            raw(b"\xff\xff\xff", timeout=10, metadata=(("x-request-id", "front-garbage"),))
        sent["front-garbage"] = (refused.value.code(), refused.value.details())
    assert sent["front-unknown-model"][0] == grpc.StatusCode.NOT_FOUND
    assert sent["front-garbage"][0] == grpc.StatusCode.INVALID_ARGUMENT
    store = store_of(records_dir)
    try:
        def recorded() -> dict:
            return {request_id: store.records_for(request_id) for request_id in sent}
        wait_for(lambda: all(recorded().values()), 30, "the front's refusals were recorded")
        for request_id, records in recorded().items():
            [record] = records
            code, message = sent[request_id]
            assert (record["side"], record["code"]) == ("front", code.name), record
            assert message in record["error"], record
    finally:
        store.close()


def test_audit_explains_a_prediction_and_pii_is_never_on_disk_in_clear(mesh, models, records_dir):
    request = pb.ModelInferRequest(model_name="contact", id="pii-1")
    request.inputs.add(name="email", datatype="BYTES", shape=[1]).contents.bytes_contents.append(SECRET.encode())
    with grpc.insecure_channel(mesh.address) as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert answer.outputs[0].contents.int64_contents == [len(SECRET)]
    result = subprocess.run(meshserve_argv("audit", "pii-1", "--json", "--address", mesh.address, "--wait", "10"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    [record] = json.loads(result.stdout)
    assert (record["model"], record["version"], record["role"], record["code"]) == ("contact", "1", "primary", "OK")
    assert record["training_data_sha256"] == "ab" * 32 and record["code_revision"] == "9e6b83a"
    assert record["package"]["provenance"]["training_data"] == "s3://bucket/contacts-2026-11.csv"
    assert len(record["digest"]) == 64
    email = record["inputs"]["email"]
    assert email["pii"] == "hmac-sha256" and len(email["values"][0]) == 64
    text = subprocess.run(meshserve_argv("audit", "pii-1", "--store", str(models)), capture_output=True, text=True,
                          timeout=60)
    assert "pii: HMAC-SHA256" in text.stdout and "contacts-2026-11" in text.stdout
    wait_for(lambda: drained(records_dir), 30, "the recorder drained every spool")
    secret, key = SECRET.encode(), PII_KEY.encode()
    for root in (models / ".meshserve", mesh.run_dir):
        for path in Path(root).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert secret not in data, f"{path} holds the pii value in clear"
                assert key not in data, f"{path} holds the pii key"
    assert SECRET not in mesh.output and PII_KEY not in mesh.output


def test_a_stopped_recorder_never_slows_a_prediction_and_its_backlog_drains(mesh, records_dir):
    recorder = child_pid(mesh, "meshserve.sidecars.records.recorder")
    os.kill(recorder, signal.SIGSTOP)
    try:
        with grpc.insecure_channel(mesh.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            started = time.monotonic()
            for i in range(200):
                stub.ModelInfer(iris_request(f"backlog-{i}"), timeout=10)
            elapsed = time.monotonic() - started
        assert elapsed < 20, f"200 requests took {elapsed:.1f} s with the recorder stopped"
        store = store_of(records_dir)
        try:
            assert not store.records_for("backlog-199"), "stored while the recorder was stopped?"
        finally:
            store.close()
    finally:
        os.kill(recorder, signal.SIGCONT)
    store = store_of(records_dir)
    try:
        wait_for(lambda: store.records_for("backlog-199"), 30, "the backlog drained")
        assert all(store.records_for(f"backlog-{i}") for i in range(200))
    finally:
        store.close()


def test_a_60_mb_request_is_recorded_with_a_marker_in_place_of_its_values(mesh, records_dir):
    rows = 60 * 1024 * 1024 // 16
    with grpc.insecure_channel(mesh.address, options=[("grpc.max_send_message_length", 100 << 20),
                                                      ("grpc.max_receive_message_length", 100 << 20)]) as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(flaky_request("huge-1", rows), timeout=120)
    assert answer.outputs[0].shape == [rows, 2]
    store = store_of(records_dir)
    try:
        [record] = wait_for(lambda: store.records_for("huge-1"), 60, "the huge request's record")
    finally:
        store.close()
    assert record["code"] == "OK"
    assert record["inputs"]["x"]["shape"] == [rows, 2] and "omitted" in record["inputs"]["x"]
    assert "values" not in record["outputs"]["y"] and "record limit" in record["outputs"]["y"]["omitted"]


def test_compliance_mode_answers_unavailable_rather_than_serve_what_it_cannot_record(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "flaky").symlink_to(ROOT / "tests" / "models" / "flaky", target_is_directory=True)
    (models / "meshserve.yaml").write_text("records: {on_failure: refuse}\n")
    mesh = start_mesh(models, "--no-envoy", env={"MESHSERVE_RECORDS_SPOOL_MAX_BYTES": str(1024 * 1024)})
    recorder = child_pid(mesh, "meshserve.sidecars.records.recorder")
    try:
        os.kill(recorder, signal.SIGSTOP)
        codes = []
        with grpc.insecure_channel(mesh.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for i in range(60):  # about 50 KB of inputs and outputs each: the 1 MiB spool fills
                try:
                    stub.ModelInfer(flaky_request(f"full-{i}", 1024), timeout=10)
                    codes.append("OK")
                except grpc.RpcError as exc:
                    codes.append(exc.code().name)
                    assert "cannot record" in exc.details()
        assert codes[0] == "OK" and codes[-1] == "UNAVAILABLE", codes
    finally:
        os.kill(recorder, signal.SIGCONT)
        mesh.stop()


def test_explain_attributes_a_recorded_prediction_to_its_features_and_keeps_it_with_the_record(mesh, models):
    rng = np.random.default_rng(7)
    with grpc.insecure_channel(mesh.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for i in range(30):
            request = pb.ModelInferRequest(model_name="iris-species", id=f"why-{i}", raw_input_contents=[
                (np.array([[5.8, 3.0, 4.3, 1.3]]) + rng.normal(0, 0.8, (1, 4))).astype(np.float32).tobytes()])
            request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
            stub.ModelInfer(request, timeout=30)
    store = store_of(models / ".meshserve" / "records")
    wait_for(lambda: store.records_for("why-29"), 30, "the records of the background")
    store.close()
    result = subprocess.run(meshserve_argv("explain", "why-29", "--store", str(models), "--address", mesh.address,
                                           "--json"), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    explanation = json.loads(result.stdout)
    assert explanation["output"] == "distance" and explanation["background_rows"] >= 20
    assert set(explanation["attributions"]) == {"sepal length (cm)", "sepal width (cm)", "petal length (cm)",
                                                "petal width (cm)"}
    assert any(abs(v) > 0 for v in explanation["attributions"].values())
    audit = subprocess.run(meshserve_argv("audit", "why-29", "--store", str(models), "--json"), capture_output=True,
                           text=True, timeout=60)
    assert json.loads(audit.stdout)[0]["explanation"]["attributions"] == explanation["attributions"]
    refused = subprocess.run(meshserve_argv("explain", "pii-1", "--store", str(models), "--address", mesh.address),
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "marked pii" in refused.stderr


def test_outcomes_reported_through_the_control_api_are_joined_to_their_predictions(mesh, models, records_dir):
    from meshserve.v1 import control_pb2 as cpb
    from meshserve.v1 import control_pb2_grpc as cpb_grpc

    with grpc.insecure_channel(mesh.address) as channel:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(iris_request("truth-1"), timeout=30)
        store = store_of(records_dir)
        wait_for(lambda: store.records_for("truth-1"), 30, "the prediction's record")
        store.close()
        control = cpb_grpc.ControlStub(channel)
        answer = control.RecordOutcomes(cpb.RecordOutcomesRequest(outcomes=[
            cpb.Outcome(request_id="truth-1", label="versicolor"),
            cpb.Outcome(request_id="nobody-asked", outputs={"species": cpb.OutcomeValues(labels=["setosa"])}),
            cpb.Outcome(request_id="truth-1-empty"),
        ]), timeout=30)
        again = control.RecordOutcomes(cpb.RecordOutcomesRequest(outcomes=[
            cpb.Outcome(request_id="truth-1", label="setosa")]), timeout=30)
    assert (answer.stored, answer.matched, answer.unknown, answer.replaced) == (2, 1, 1, 0)
    assert len(answer.refused) == 1 and "truth-1-empty" in answer.refused[0]
    assert (again.stored, again.replaced) == (1, 1)
    result = subprocess.run(meshserve_argv("quality", "iris-species", "--store", str(models), "--json"),
                            capture_output=True, text=True, timeout=60)
    [group] = json.loads(result.stdout)["groups"]
    species = group["outputs"]["species"]
    store = store_of(records_dir)
    predicted = store.records_for("truth-1")[0]["outputs"]["species"]["values"][0]
    store.close()
    assert species["n"] == 1, "only truth-1 has both a prediction and an outcome"
    assert species["accuracy"] == (1.0 if predicted == "setosa" else 0.0), "the latest report (setosa) counts"
