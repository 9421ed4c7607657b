"""The whole path with `meshserve up`: client -> Envoy -> router -> Envoy -> adapters.

The mesh reads meshserve.yaml beside the packages, starts replicas per variant and Envoy in
front; rollouts go through the control service (gRPC and `meshserve rollout`) and change the
live split without restarting Envoy or failing a request.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from conftest import meshserve_argv, start_mesh
from models.variant_packages import write_spec, write_variant_packages
from models.variant_traffic import TrafficClient, versions_of, within_binomial_interval

from tritonclient.grpc import service_pb2 as pb

from meshserve.v1 import control_pb2 as cpb
from meshserve.v1 import control_pb2_grpc as cpb_grpc

pytestmark = pytest.mark.slow

SPEC = {
    "models": {
        "canary": {
            "variants": [{"version": "1", "weight": 90, "replicas": 2}, {"version": "2", "weight": 10}],
            "shadows": [{"version": "3", "fraction": 0.0}],
            "routing_key_header": "x-user-id",
            "fallback": "1",
        },
    }
}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    root = tmp_path_factory.mktemp("envoy-mesh")
    models = write_variant_packages(root / "models", "canary", ["1", "2", "3"])
    write_spec(models, SPEC)
    count_dir = root / "calls"
    count_dir.mkdir()
    process = start_mesh(models, env={"MESHSERVE_TEST_COUNT_DIR": str(count_dir)})
    process.count_dir = count_dir
    process.client = TrafficClient(process.address)
    channel = grpc.insecure_channel(process.address)
    process.control = cpb_grpc.ControlStub(channel)
    yield process
    process.client.close()
    channel.close()
    process.stop()


def calls(mesh, version: str) -> int:
    path = mesh.count_dir / f"{version}.calls"
    return len(path.read_text().splitlines()) if path.exists() else 0


def set_rollout(mesh, weights: dict[str, int], shadows: dict[str, float] | None = None) -> cpb.Rollout:
    rollout = cpb.Rollout(model="canary", weights=weights, shadows=shadows or {})
    return mesh.control.SetRollout(cpb.SetRolloutRequest(rollout=rollout), timeout=15)


def test_meshserve_up_starts_each_replica_and_envoy_in_front(mesh):
    ready = [line for line in mesh.lines if "meshserve adapter ready" in line]
    assert sorted(line.split("]")[0] + "]" for line in ready) == \
        ["[canary:1#1]", "[canary:1#2]", "[canary:2]", "[canary:3]"]
    assert any("meshserve envoy ready" in line for line in mesh.lines)
    assert any(f"Envoy front {mesh.address} -> adapters" in line for line in mesh.lines)


def test_a_90_10_split_through_the_whole_mesh_and_every_response_names_the_variant_that_answered(mesh):
    set_rollout(mesh, {"1": 90, "2": 10})
    before = {v: calls(mesh, v) for v in ("1", "2")}
    counts = versions_of(mesh.client.send(2000, model="canary"))
    assert within_binomial_interval(counts.get("2", 0), 2000, 0.10), counts
    assert {v: calls(mesh, v) - before[v] for v in ("1", "2")} == {"1": counts.get("1", 0), "2": counts.get("2", 0)}


def test_a_client_naming_a_version_gets_that_version(mesh):
    set_rollout(mesh, {"1": 100})
    assert versions_of(mesh.client.send(30, model="canary", version="2")) == {"2": 30}


def test_twenty_live_weight_changes_under_sixteen_requests_in_flight_fail_nothing(mesh):
    plan = [{"1": w, "2": 100 - w} for w in (10, 50, 0, 100, 30, 70, 90, 20, 60, 40,
                                              80, 0, 100, 25, 75, 5, 95, 45, 55, 30)]
    duration = 20.0
    outcomes = {"ok": 0, "failed": []}

    async def load():
        stop = time.monotonic() + duration

        async def client():
            while time.monotonic() < stop:
                try:
                    await mesh.client.infer("canary")
                    outcomes["ok"] += 1
                except grpc.RpcError as exc:
                    outcomes["failed"].append(f"{exc.code()}: {exc.details()}")

        async def operator():
            for weights in plan:
                await asyncio.sleep(duration / (len(plan) + 1))
                await asyncio.to_thread(set_rollout, mesh, weights)

        await asyncio.gather(operator(), *(client() for _ in range(16)))

    mesh.client.run(load())
    assert outcomes["failed"] == [], outcomes["failed"][:5]
    assert outcomes["ok"] > 100
    live = mesh.control.GetRollout(cpb.GetRolloutRequest(model="canary"), timeout=5)
    assert dict(live.weights) == {"1": 30, "2": 70}
    counts = versions_of(mesh.client.send(1000, model="canary"))
    assert within_binomial_interval(counts.get("1", 0), 1000, 0.30), counts


def test_a_thousand_routing_keys_sent_five_times_each_stay_on_their_variant(mesh):
    set_rollout(mesh, {"1": 50, "2": 50})
    assignment = mesh.client.sticky_assignment("canary", [f"user-{i}" for i in range(1000)], sends=5)
    assert all(len(variants) == 1 for variants in assignment.values()), \
        [k for k, v in assignment.items() if len(v) > 1][:5]
    on_two = sum(1 for variants in assignment.values() if variants == {"2"})
    assert within_binomial_interval(on_two, 1000, 0.5), on_two


def test_a_full_shadow_through_the_mesh_sees_every_request_and_the_client_never_sees_it(mesh):
    set_rollout(mesh, {"1": 100}, {"3": 1.0})
    before = calls(mesh, "3")
    assert versions_of(mesh.client.send(100, model="canary")) == {"1": 100}
    deadline = time.monotonic() + 10
    while calls(mesh, "3") - before < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls(mesh, "3") - before == 100


def test_meshserve_rollout_shows_changes_and_refuses_a_bad_split(mesh):
    def rollout(*args):
        return subprocess.run(meshserve_argv("rollout", "canary", "--address", mesh.address, *args),
                              capture_output=True, text=True, timeout=60)

    changed = rollout("--weights", "1=80,2=20", "--shadow", "3=0.5")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == "canary: weights 1=80 (80.0%), 2=20 (20.0%); shadows 3=0.5"
    shown = rollout()
    assert shown.stdout.strip() == changed.stdout.strip()
    refused = rollout("--weights", "1=50,9=50")
    assert refused.returncode == 1
    assert "INVALID_ARGUMENT" in refused.stderr and "version '9' is not deployed" in refused.stderr
    assert "Fix:" in refused.stderr
    assert rollout().stdout.strip() == changed.stdout.strip()  # nothing changed
    rolled_back = rollout("--weights", "1=100", "--no-shadows")
    assert rolled_back.stdout.strip() == "canary: weights 1=100 (100.0%), 2=0 (0.0%); shadows none"


def adapter_pids(mesh, package_name: str) -> list[int]:
    """Adapter processes the mesh started for one package folder (children of the mesh process)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if parent == mesh.proc.pid and b"meshserve.adapters.server" in cmdline and \
                any(arg.endswith(package_name.encode()) for arg in cmdline):
            pids.append(int(entry.name))
    return pids


def test_a_version_stays_ready_while_one_of_its_replicas_is_down(mesh):
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(mesh.address)
    assert client.is_model_ready("canary", "1") and client.is_model_ready("canary")
    pids = adapter_pids(mesh, "canary-1")
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    # Readiness is asked through Envoy, like inferences: the surviving replica answers.
    assert all(client.is_model_ready("canary", "1") for _ in range(10))
    assert not client.is_model_ready("canary", "9")


def test_killing_every_replica_of_a_variant_falls_back_without_a_failed_or_hanging_request(mesh):
    set_rollout(mesh, {"1": 0, "2": 100})
    assert versions_of(mesh.client.send(20, model="canary")) == {"2": 20}
    pids = adapter_pids(mesh, "canary-2")
    assert len(pids) == 1
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    # A request already on the dead replica's connection fails fast with UNAVAILABLE (it is not
    # replayed: it may be what crashed the replica); then the spec's fallback, variant 1, takes
    # variant 2's traffic until the mesh restarts it.
    first = mesh.client.send(20, concurrency=4, model="canary", timeout=10)
    failed = [r for r in first if not isinstance(r, pb.ModelInferResponse)]
    assert all(r.code() == grpc.StatusCode.UNAVAILABLE for r in failed), failed
    assert len(failed) <= 4, f"{len(failed)} requests failed after the kill, not only those in flight"
    results = mesh.client.send(100, concurrency=4, model="canary", timeout=10)
    assert set(versions_of(results)) <= {"1", "2"} and "1" in versions_of(results)


def test_a_bad_spec_stops_meshserve_up_before_anything_starts(tmp_path):
    models = write_variant_packages(tmp_path / "models", "canary", ["1", "2"])
    write_spec(models, {"models": {"canary": {"variants": [
        {"version": "1", "weight": 50}, {"version": "2", "weight": 50}],
        "shadows": [{"version": "2", "fraction": 0.5}]}}})
    result = subprocess.run(meshserve_argv("up", str(models), "--listen", "127.0.0.1:0"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{models / 'meshserve.yaml'}: field 'models.canary'" in result.stderr
    assert "listed more than once" in result.stderr and "Fix:" in result.stderr
    assert "adapter ready" not in result.stdout
