"""Envoy's mesh listener moving real traffic between real adapter processes.

The test plays the router: it sends ModelInfer to Envoy's mesh listener with the header
`x-meshserve-model` (and `x-meshserve-version` to pin), exactly what the router sends. Each
variant is a real adapter process serving tests/models/variant_model.py; it appends one line
per served call to a file, so the counts below are taken at the adapters themselves.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import pytest
from conftest import RunningProcess, free_port, meshserve_argv
from models.variant_packages import write_variant_packages
from models.variant_traffic import TrafficClient, versions_of, within_binomial_interval
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from meshserve.spec.deployment_spec import parse_spec
from meshserve.envoy.layout import EnvoyLayout, UpstreamAddresses
from meshserve.envoy.render import render
from meshserve.envoy.process import EnvoyProcess
from meshserve.envoy.rollouts import LiveRollouts

pytestmark = pytest.mark.slow

SPEC = {
    "models": {
        "canary": {
            "variants": [{"version": "1", "weight": 90, "replicas": 2}, {"version": "2", "weight": 10}],
            "shadows": [{"version": "3", "fraction": 0.0}, {"version": "slow", "fraction": 0.0},
                        {"version": "broken", "fraction": 0.0}, {"version": "spy", "fraction": 0.0}],
            "routing_key_header": "x-user-id",
            "timeouts": {"request_s": 1},
        },
        # Variant 1 falls back to 2 when it has no healthy replica.
        "fragile": {
            "variants": [{"version": "1", "weight": 100}, {"version": "2", "weight": 0}],
            "fallback": "2",
        },
    }
}
class SpyAdapter:
    """An in-process Open Inference Protocol server that records the metadata of each call.

    It stands in for an adapter only to observe headers Envoy adds (adapters do not expose them).
    """

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        from grpc_health.v1 import health, health_pb2_grpc

        spy = self
        self.metadata: list[dict[str, str]] = []

        class Servicer(pb_grpc.GRPCInferenceServiceServicer):
            def ModelInfer(self, request, context):
                spy.metadata.append(dict(context.invocation_metadata()))
                return pb.ModelInferResponse(model_name=request.model_name, model_version="spy")

        self.server = grpc.server(ThreadPoolExecutor(4))
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), self.server)
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()


class Mesh:
    """Adapters + Envoy as the mesh runs them, with the test in the router's seat."""

    def __init__(self, root: Path):
        self.root = root
        self.count_dir = root / "calls"
        self.count_dir.mkdir()
        self.spec = parse_spec(SPEC, "meshserve.yaml")
        self.adapters: dict[tuple[str, str], list[RunningProcess]] = {}
        self.client = None
        self.spy: SpyAdapter | None = None

    def start(self):
        packages = self.root / "packages"
        write_variant_packages(packages, "canary", ["1", "2", "3", "slow", "broken"])
        write_variant_packages(packages, "fragile", ["1", "2"])
        env = {"MESHSERVE_TEST_COUNT_DIR": str(self.count_dir)}
        variants: dict[tuple[str, str], list[str]] = {}
        for model, deployment in self.spec.models.items():
            for version, replicas in deployment.replicas.items():
                if version == "spy":
                    continue
                processes = []
                for _ in range(replicas):
                    # Port 0: each adapter binds a port of its own choosing and names it when ready.
                    argv = meshserve_argv("adapter", str(packages / f"{model}-{version}"), "--listen", "127.0.0.1:0")
                    processes.append(RunningProcess(argv, env=env))
                self.adapters[(model, version)] = processes
        for key, processes in self.adapters.items():
            for process in processes:
                process.address = process.wait_for_line(r"meshserve adapter ready: \S+ on (\S+)", 120).group(1)
            variants[key] = [p.address for p in processes]
        self.spy = SpyAdapter()
        variants[("canary", "spy")] = [self.spy.address]
        self.layout = EnvoyLayout(self.root / "envoy", front=f"127.0.0.1:{free_port()}",
                                  mesh=f"127.0.0.1:{free_port()}", admin=f"127.0.0.1:{free_port()}")
        upstreams = UpstreamAddresses(router=[f"127.0.0.1:{free_port()}"], variants=variants)
        render(self.layout, self.spec, upstreams).write(self.layout)
        self.rollouts = LiveRollouts(self.spec, self.layout)
        self.envoy = EnvoyProcess.for_layout(self.layout).start()
        self.client = TrafficClient(self.layout.mesh, as_router=True)

    def stop(self):
        if self.client is not None:
            self.client.close()
        if self.spy is not None:
            self.spy.server.stop(0)
        if getattr(self, "envoy", None) is not None:
            self.envoy.stop()
        for processes in self.adapters.values():
            for process in processes:
                process.stop()

    # -- traffic --------------------------------------------------------------------------

    def rollout(self, model: str, weights=None, shadows=None):
        self.rollouts.apply(model, weights, shadows)
        self.envoy.admin.wait_for_routes(self.rollouts.version_info)

    def send(self, count: int, concurrency: int = 16, **kwargs) -> list:
        return self.client.send(count, concurrency, **kwargs)

    def calls(self, version: str) -> int:
        path = self.count_dir / f"{version}.calls"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def wait_for_calls(self, version: str, at_least: int, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while self.calls(version) < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # let stragglers land so an over-count would show too
        return self.calls(version)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    mesh = Mesh(tmp_path_factory.mktemp("envoy-traffic"))
    try:
        mesh.start()
        yield mesh
    finally:
        mesh.stop()


def test_a_90_10_canary_split_lands_within_the_binomial_interval_and_each_response_names_its_variant(mesh):
    mesh.rollout("canary", {"1": 90, "2": 10}, {})
    before = {v: mesh.calls(v) for v in ("1", "2")}
    results = mesh.send(2000, model="canary")
    counts = versions_of(results)
    assert set(counts) <= {"1", "2"}
    assert within_binomial_interval(counts.get("2", 0), 2000, 0.10), counts
    # model_version names the variant that answered: the adapters counted the same split.
    assert {v: mesh.calls(v) - before[v] for v in ("1", "2")} == {"1": counts.get("1", 0), "2": counts.get("2", 0)}


@pytest.mark.parametrize("weights, only", [({"1": 0, "2": 100}, "2"), ({"1": 100, "2": 0}, "1")])
def test_a_0_100_split_is_exact(mesh, weights, only):
    mesh.rollout("canary", weights, {})
    assert versions_of(mesh.send(300, model="canary")) == {only: 300}


def test_a_request_naming_a_version_goes_to_that_variant_only_even_at_weight_zero(mesh):
    mesh.rollout("canary", {"1": 100, "2": 0}, {})
    assert versions_of(mesh.send(50, model="canary", version="2")) == {"2": 50}
    assert versions_of(mesh.send(20, model="canary", version="3")) == {"3": 20}


def test_a_variant_slower_than_the_spec_timeout_gets_deadline_exceeded_not_a_hang(mesh):
    # The spec gives canary 1 s; version "slow" takes 2 s; the client would wait 10 s.
    (result,) = mesh.send(1, concurrency=1, model="canary", version="slow", timeout=10.0)
    assert isinstance(result, grpc.RpcError) and result.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_model_the_mesh_does_not_serve_gets_not_found(mesh):
    with pytest.raises(grpc.RpcError) as caught:
        mesh.client.run(mesh.client.infer("no-such-model"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_shadow_at_fraction_one_receives_every_request(mesh):
    mesh.rollout("canary", {"1": 100, "2": 0}, {"3": 1.0})
    before = mesh.calls("3")
    assert versions_of(mesh.send(200, model="canary")) == {"1": 200}  # shadow answers never reach the client
    assert mesh.wait_for_calls("3", before + 200) - before == 200


def test_a_shadow_at_a_quarter_receives_about_a_quarter(mesh):
    mesh.rollout("canary", {"1": 100}, {"3": 0.25})
    before = mesh.calls("3")
    versions_of(mesh.send(800, model="canary"))
    received = mesh.wait_for_calls("3", before + 200, timeout=3) - before
    assert within_binomial_interval(received, 800, 0.25), received


def test_mirrored_requests_are_marked_as_shadow_and_primaries_are_not(mesh):
    mesh.spy.metadata.clear()
    mesh.rollout("canary", {"1": 90, "2": 10}, {"spy": 1.0})
    results = mesh.send(40, model="canary")
    assert set(versions_of(results)) <= {"1", "2"}
    deadline = time.monotonic() + 5
    while len(mesh.spy.metadata) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(mesh.spy.metadata) == 40
    assert {m.get("x-meshserve-role") for m in mesh.spy.metadata} == {"shadow"}
    # The copy carries the primary's request id, so records of both can be joined.
    assert all(m.get("x-request-id") for m in mesh.spy.metadata)


def test_a_shadow_that_sleeps_two_seconds_does_not_slow_the_primary(mesh):
    mesh.rollout("canary", {"1": 100}, {"slow": 1.0})
    before = mesh.calls("slow")
    # Each primary must answer within 1 s, so waiting for the 2 s shadow would fail it.
    results = mesh.send(24, concurrency=4, model="canary", timeout=1.0)
    assert versions_of(results) == {"1": 24}
    assert mesh.wait_for_calls("slow", before + 1, timeout=5) > before  # the shadow really was called


def test_a_shadow_that_fails_every_request_does_not_fail_the_primary(mesh):
    mesh.rollout("canary", {"1": 100}, {"broken": 1.0})
    before = mesh.calls("broken")
    assert versions_of(mesh.send(200, model="canary")) == {"1": 200}
    assert mesh.wait_for_calls("broken", before + 200) - before == 200


def test_a_variant_with_all_replicas_killed_falls_back_then_fails_fast_with_unavailable(mesh):
    assert versions_of(mesh.send(20, model="fragile")) == {"1": 20}
    for process in mesh.adapters[("fragile", "1")]:
        process.stop(signal.SIGKILL)
    # The spec names variant 2 as fallback: requests keep succeeding, answered by it.
    assert versions_of(mesh.send(50, model="fragile")) == {"2": 50}
    for process in mesh.adapters[("fragile", "2")]:
        process.stop(signal.SIGKILL)
    # Nothing hangs until the deadline (that would be DEADLINE_EXCEEDED): each is refused outright.
    results = mesh.send(20, concurrency=4, model="fragile", timeout=10.0)
    assert all(isinstance(r, grpc.RpcError) and r.code() == grpc.StatusCode.UNAVAILABLE for r in results), \
        [r.code() if isinstance(r, grpc.RpcError) else r.model_version for r in results]
