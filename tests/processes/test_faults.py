"""Faults stay contained: a crashed adapter fails fast and comes back, a raising model gets
INTERNAL, deadlines hold, and stopping the mesh leaves no process behind."""

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES, ROOT, start_mesh


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fault-models")
    (folder / "flaky").symlink_to(ROOT / "tests" / "models" / "flaky", target_is_directory=True)
    (folder / "iris").symlink_to(EXAMPLES / "iris_species", target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def mesh(models):
    process = start_mesh(models)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def stub(mesh):
    with grpc.insecure_channel(mesh.address) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def flaky_request(first: float, second: float = 0.0) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="flaky", raw_input_contents=[np.array([[first, second]]).tobytes()])
    request.inputs.add(name="x", datatype="FP64", shape=[1, 2])
    return request


def iris_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris-species", raw_input_contents=[np.ones((1, 4), np.float32).tobytes()])
    request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
    return request


def pids_running(pattern: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if pattern in cmdline:
                found.append(int(entry.name))
    return found


def children_of_mesh(mesh) -> list[int]:
    return [pid for pid in pids_running("meshserve.") if pid != mesh.proc.pid and _parent(pid) == mesh.proc.pid]


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError):
        return -1


def adapter_pid(mesh, directory: str) -> int:
    pids = [pid for pid in children_of_mesh(mesh) if directory in Path(f"/proc/{pid}/cmdline").read_text()]
    assert len(pids) == 1, pids
    return pids[0]


def test_a_model_that_raises_gets_internal_with_type_and_message(stub):
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(flaky_request(-1), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "ValueError" in caught.value.details() and "negative one is not allowed" in caught.value.details()
    assert np.frombuffer(stub.ModelInfer(flaky_request(3), timeout=30).raw_output_contents[0]).tolist() == [6.0, 0.0]


def test_the_clients_deadline_reaches_the_adapter(stub):
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(flaky_request(-2, 5.0), timeout=1.0)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 4.0, "the call outlived its deadline"


def test_a_killed_adapter_fails_fast_other_models_answer_and_it_comes_back(mesh, stub):
    victim = adapter_pid(mesh, "flaky")
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(stub.ModelInfer, flaky_request(-2, 20.0), timeout=30)
        time.sleep(1.0)  # the slow request is now inside the adapter
        os.kill(victim, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            in_flight.result()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 5.0, "the in-flight request waited instead of failing fast"
    assert "unavailable" in caught.value.details()

    with pytest.raises(grpc.RpcError) as new_call:
        stub.ModelInfer(flaky_request(1), timeout=10)
    assert new_call.value.code() == grpc.StatusCode.UNAVAILABLE
    assert stub.ModelInfer(iris_request(), timeout=10).model_name == "iris-species"

    deadline = time.monotonic() + 20
    while True:
        try:
            answer = stub.ModelInfer(flaky_request(2), timeout=5)
            break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
            assert time.monotonic() < deadline, "the adapter was not restarted within 20 s"
            time.sleep(0.2)
    assert np.frombuffer(answer.raw_output_contents[0]).tolist() == [4.0, 0.0]
    assert adapter_pid(mesh, "flaky") != victim
    assert "flaky:1 exited with code -9; restarting" in mesh.output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stopping_the_mesh_leaves_no_process_behind(models, sig):
    mesh = start_mesh(models)
    try:
        children = children_of_mesh(mesh)
        assert len(children) == 5, children  # two adapters, Envoy, the router and the recorder
    except BaseException:
        mesh.stop()
        raise
    assert mesh.stop(sig) == 0
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert "meshserve: stopped" in mesh.output


def test_children_do_not_outlive_a_killed_mesh(models):
    mesh = start_mesh(models)
    children = children_of_mesh(mesh)
    mesh.stop(signal.SIGKILL)
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]


def test_a_second_mesh_on_a_busy_address_is_refused_not_shared(mesh, models):
    import subprocess

    from conftest import meshserve_argv

    result = subprocess.run(meshserve_argv("up", str(models), "--listen", mesh.address),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"cannot listen on {mesh.address}" in result.stderr and "--listen" in result.stderr
    assert "adapter ready" not in result.stdout
