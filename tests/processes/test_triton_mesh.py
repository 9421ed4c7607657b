"""A Triton model through the whole mesh (`meshserve up`: router, adapter, meshserve's own Triton).

Stories: stock tritonclient gets the same answers from meshserve as from Triton itself; Triton's
dynamic batching still works when requests come through the mesh; a Triton killed under load
answers UNAVAILABLE at once and comes back by itself; a package that does not match its Triton
model never goes live; stopping meshserve leaves no Triton behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_http2
import tritonclient.grpc.aio as triton_aio
import yaml
from conftest import start_mesh, wait_for
from tritonclient.utils import InferenceServerException

from conftest import ROOT  # noqa: E402
EXAMPLE = ROOT / "examples" / "triton_digits"
MESH_MODEL = "digits-triton"
TRITON_MODEL = "digits_mlp"

from meshserve.adapters.triton.triton_env import not_installed_message, triton_environment  # noqa: E402
if triton_environment() is None:
    pytest.skip(not_installed_message(), allow_module_level=True)
pytestmark = pytest.mark.slow


def triton_processes(root_pid: int) -> list[tuple[int, int]]:
    """(pid, gRPC port) of each tritonserver below `root_pid` in the process tree."""
    found, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        try:
            children = [int(c) for task in os.listdir(f"/proc/{pid}/task")
                        for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        pending.extend(children)
        if argv and argv[0].endswith("/tritonserver"):
            port = next(int(a.split("=", 1)[1]) for a in argv if a.startswith("--grpc-port="))
            found.append((pid, port))
    return found


def wait_for_triton(root_pid: int, other_than: int | None = None, timeout: float = 60) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [p for p in triton_processes(root_pid) if p[0] != other_than]
        if running:
            return running[0]
        time.sleep(0.1)
    raise AssertionError(f"no tritonserver below pid {root_pid} within {timeout} s")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def digits_input(rows: np.ndarray) -> triton_http2.InferInput:
    tensor = triton_http2.InferInput("pixels", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    return tensor


@pytest.fixture(scope="module")
def digits_package() -> Path:
    if not (EXAMPLE / "model_repository" / TRITON_MODEL / "1" / "weights.npz").exists():
        subprocess.run([sys.executable, str(EXAMPLE / "train.py")], check=True, capture_output=True)
    return EXAMPLE


@pytest.fixture(scope="module")
def triton_mesh(digits_package):
    """`meshserve up` over the Triton example; `.triton()` gives (pid, address) of its current Triton."""
    mesh = start_mesh(digits_package)
    mesh.triton = lambda other_than=None: (lambda p: (p[0], f"127.0.0.1:{p[1]}"))(
        wait_for_triton(mesh.proc.pid, other_than))
    yield mesh
    mesh.stop()


def test_stock_tritonclient_gets_the_same_answers_from_meshserve_as_from_triton_directly(triton_mesh):
    _, triton_address = triton_mesh.triton()
    through_mesh = triton_http2.InferenceServerClient(triton_mesh.address)
    direct = triton_http2.InferenceServerClient(triton_address)
    rng = np.random.default_rng(6)
    inputs = rng.uniform(0, 16, size=(1000, 64)).astype(np.float32)
    # 1,000 random images in requests of 1 to 32 rows, the same requests to both.
    cuts = np.cumsum(rng.integers(1, 33, size=200))
    chunks = np.split(inputs, cuts[cuts < 1000])
    assert sum(len(c) for c in chunks) == 1000
    for chunk in chunks:
        mesh_result = through_mesh.infer(MESH_MODEL, [digits_input(chunk)])
        triton_result = direct.infer(TRITON_MODEL, [digits_input(chunk)])
        np.testing.assert_array_equal(mesh_result.as_numpy("digit"), triton_result.as_numpy("digit"))
        # Triton may batch a chunk with different neighbours; float sums may differ in the last bit.
        np.testing.assert_allclose(mesh_result.as_numpy("probabilities"), triton_result.as_numpy("probabilities"),
                                   rtol=1e-5, atol=1e-7)
        assert mesh_result.get_response().model_name == MESH_MODEL


def test_meshserve_describes_the_model_as_triton_does(triton_mesh):
    _, triton_address = triton_mesh.triton()
    ours = triton_http2.InferenceServerClient(triton_mesh.address).get_model_metadata(MESH_MODEL, as_json=True)
    theirs = triton_http2.InferenceServerClient(triton_address).get_model_metadata(TRITON_MODEL, as_json=True)
    for kind in ("inputs", "outputs"):
        assert [(t["name"], t["datatype"], t["shape"]) for t in ours[kind]] == \
               [(t["name"], t["datatype"], t["shape"]) for t in theirs[kind]]


def test_model_config_is_tritons_own_under_the_mesh_name(triton_mesh):
    _, triton_address = triton_mesh.triton()
    ours = triton_http2.InferenceServerClient(triton_mesh.address).get_model_config(MESH_MODEL).config
    theirs = triton_http2.InferenceServerClient(triton_address).get_model_config(TRITON_MODEL).config
    assert ours.name == MESH_MODEL
    theirs.name = MESH_MODEL
    assert ours == theirs and ours.max_batch_size == 64 and ours.HasField("dynamic_batching")


def test_tritons_log_lives_in_the_run_folder(triton_mesh):
    line = next(line for line in triton_mesh.lines if "tritonserver" in line and " log " in line)
    log_path = Path(line.rsplit(" log ", 1)[1])
    assert log_path.parent.name == "logs" and log_path.parent.parent.name.startswith("meshserve-run-"), line
    assert log_path.is_file()


def batch_counts(client: triton_http2.InferenceServerClient) -> dict[int, int]:
    stats = client.get_inference_statistics(TRITON_MODEL, as_json=True)["model_stats"][0]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}


def test_concurrent_requests_through_meshserve_are_batched_by_triton(triton_mesh):
    _, triton_address = triton_mesh.triton()
    direct = triton_http2.InferenceServerClient(triton_address)
    before = batch_counts(direct)

    async def send_concurrently(requests: int) -> None:
        client = triton_aio.InferenceServerClient(triton_mesh.address)
        rows = np.random.default_rng(1).uniform(0, 16, size=(requests, 1, 64)).astype(np.float32)
        try:
            results = await asyncio.gather(*(client.infer(MESH_MODEL, [digits_input(r)]) for r in rows))
        finally:
            await client.close()
        assert all(r.as_numpy("digit").shape == (1, 1) for r in results)

    asyncio.run(send_concurrently(64))

    seen: list[dict[int, int]] = []

    def all_counted() -> dict[int, int] | None:
        after = batch_counts(direct)
        seen.append({size: after.get(size, 0) - before.get(size, 0) for size in after})
        return seen[-1] if sum(size * count for size, count in seen[-1].items()) >= 64 else None

    # Triton's Python backend reports a batch's statistics after its answers are on their way.
    executions = wait_for(all_counted, 10, "Triton's statistics to count the 64 rows")
    assert sum(size * count for size, count in executions.items()) == 64, executions
    batched = {size: count for size, count in executions.items() if size > 1 and count > 0}
    assert batched, f"Triton ran every one of 64 concurrent requests alone: {executions}"


def test_triton_killed_under_load_answers_unavailable_at_once_then_serves_again(triton_mesh):
    killed_pid, _ = triton_mesh.triton()
    rows = np.random.default_rng(2).uniform(0, 16, size=(1, 64)).astype(np.float32)
    outcomes: list[tuple[float, str, str]] = []  # (when sent, status name, message)

    async def load(until_recovered_after_kill: asyncio.Event, killed: asyncio.Event) -> None:
        client = triton_aio.InferenceServerClient(triton_mesh.address)

        async def worker():
            while not until_recovered_after_kill.is_set():
                sent = time.monotonic()
                try:
                    # A generous deadline: a request must never hang waiting for the dead Triton.
                    await client.infer(MESH_MODEL, [digits_input(rows)], client_timeout=20)
                    status, message = "OK", ""
                except InferenceServerException as exc:
                    status, message = str(exc.status()).rpartition(".")[2], exc.message()
                    await asyncio.sleep(0.02)
                outcomes.append((sent, status, message))
                if killed.is_set() and status == "OK" and any(s != "OK" for _, s, _ in outcomes):
                    until_recovered_after_kill.set()

        async def killer():
            await asyncio.sleep(0.5)
            os.kill(killed_pid, signal.SIGKILL)
            killed.set()
            await asyncio.wait_for(until_recovered_after_kill.wait(), timeout=90)

        try:
            await asyncio.gather(killer(), *(worker() for _ in range(4)))
        finally:
            await client.close()

    asyncio.run(load(asyncio.Event(), asyncio.Event()))
    statuses = {s for _, s, _ in outcomes}
    unexpected = sorted({f"{s}: {m}" for _, s, m in outcomes if s not in ("OK", "UNAVAILABLE")})
    assert not unexpected, f"only UNAVAILABLE may be seen while Triton restarts: {unexpected}"
    assert "UNAVAILABLE" in statuses
    assert outcomes[-1][1] == "OK"
    new_pid, new_address = triton_mesh.triton(other_than=killed_pid)
    assert new_pid != killed_pid and not pid_alive(killed_pid)
    # Envoy sends clients straight to Triton, which answers once its models are loaded; the adapter
    # says so a moment later.
    triton_mesh.wait_for_line("tritonserver restarted", 30)
    result = triton_http2.InferenceServerClient(triton_mesh.address).infer(MESH_MODEL, [digits_input(rows)])
    assert result.as_numpy("digit").shape == (1, 1)


def test_a_package_whose_signature_disagrees_with_triton_never_serves(adapter_factory, digits_package, tmp_path):
    package = tmp_path / "mismatch"
    package.mkdir()
    (package / "model_repository").symlink_to(digits_package / "model_repository", target_is_directory=True)
    manifest = yaml.safe_load((digits_package / "model.yaml").read_text())
    manifest["signature"]["inputs"][0]["shape"] = [-1, 8, 8]
    manifest.pop("golden", None)  # not copied
    (package / "model.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(AssertionError, match="process exited") as refused:
        adapter_factory(package)
    output = str(refused.value)
    assert "signature.inputs.pixels" in output and "[-1, 8, 8] in model.yaml but [-1, 64] in Triton" in output
    assert "meshserve adapter ready:" not in output


def test_stopping_the_adapter_stops_its_triton_and_python_stubs(adapter_factory, digits_package):
    adapter = adapter_factory(digits_package)
    triton_pid, triton_address = (lambda p: (p[0], f"127.0.0.1:{p[1]}"))(wait_for_triton(adapter.proc.pid))
    stub_pids = [int(c) for c in Path(f"/proc/{triton_pid}/task/{triton_pid}/children").read_text().split()]
    assert triton_http2.InferenceServerClient(triton_address).is_model_ready(TRITON_MODEL)
    assert adapter.stop(signal.SIGTERM) == 0
    assert not pid_alive(triton_pid)
    assert stub_pids and not any(pid_alive(p) for p in stub_pids)


def test_a_killed_adapter_takes_its_triton_with_it(adapter_factory, digits_package):
    adapter = adapter_factory(digits_package)
    triton_pid, _ = wait_for_triton(adapter.proc.pid)
    adapter.stop(signal.SIGKILL)
    deadline = time.monotonic() + 30
    while pid_alive(triton_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(triton_pid), "an orphaned tritonserver outlived its adapter"


def test_grpc_status_for_a_bad_request_names_the_input(triton_mesh):
    client = triton_http2.InferenceServerClient(triton_mesh.address)
    with pytest.raises(InferenceServerException) as refused:
        client.infer(MESH_MODEL, [digits_input(np.zeros((1, 63), np.float32))])
    assert refused.value.status() == str(grpc.StatusCode.INVALID_ARGUMENT)
    assert "pixels" in refused.value.message()
