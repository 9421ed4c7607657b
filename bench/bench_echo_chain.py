"""The physical limit of the mesh's data path: what the same requests cost when every process on
the path does nothing but pass them on, against what the mesh's processes cost, in one run.

Targets, each its own processes, one-row breast-cancer requests (30 FP64 features):

* echo server: a bare grpc.aio ModelInfer that answers the inputs as outputs (echo_servers.py),
  called directly;
* echo chain: client -> Envoy -> echo forwarder -> Envoy -> echo server, the mesh's shape with
  Envoy's configuration rendered by meshserve.envoy exactly as `meshserve up` renders it;
* adapter alone: breast-cancer's adapter, called directly;
* full mesh: `meshserve up` on breast-cancer with its defaults (records and metrics on),
  recording into an empty store of its own.

The adapter and the mesh serve the example less its `batching:` section: every request is one
predict call, as every echo is one hop, so the estimator's CPU per call can be taken off.

For each target: requests/s, median and p99 latency, and CPU microseconds per request of each
process role (from /proc, the client excluded; steadier than time on a shared machine). Then
the ratios the project's goals are stated in, at concurrency 1 and 16: router / forwarder,
adapter / echo server (also with the estimator's own predict CPU per call, timed in this
process in the same run, taken off), full mesh / echo chain. Targets run in short slices in
rotating order, so load from elsewhere lands on all of them.

    .venv/bin/python bench/bench_echo_chain.py [--seconds 6] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from tritonclient.grpc import service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_envoy import MODEL_DIR, example_with_batching, one_row_request
from conftest import RunningProcess, free_port, start_mesh
from echo_servers import READY
from load import measure, rotating_slices, table
from process_cpu import PartsCpu, cpu_table

from meshserve.adapters.python.load_errors import load_estimator
from meshserve.core.model_package import load_package
from meshserve.core.replica_slots import replica_slots
from meshserve.core.settings import get_settings
from meshserve.envoy.layout import EnvoyLayout, UpstreamAddresses
from meshserve.envoy.process import EnvoyProcess
from meshserve.envoy.render import render
from meshserve.spec.deployment_spec import deployment_for

CONCURRENCIES = (1, 16)
ECHO, CHAIN, ADAPTER, MESH = "echo server", "echo chain", "adapter alone", "full mesh"


@dataclass
class Target:
    label: str
    address: str
    processes: list  # RunningProcess or EnvoyProcess: each has .proc and .stop()
    cpu: PartsCpu = field(init=False)

    def __post_init__(self) -> None:
        self.cpu = PartsCpu(*(p.proc.pid for p in self.processes))

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def echo_process(kind: str, next_hop: str | None = None) -> RunningProcess:
    address = f"127.0.0.1:{free_port()}"
    process = RunningProcess([sys.executable, str(ROOT / "bench" / "echo_servers.py"), kind, "--listen", address,
                              *(["--next", next_hop] if next_hop else [])])
    process.wait_for_line(READY, 30)
    process.address = address
    return process


def echo_chain(run_dir: Path, package_dir: Path) -> Target:
    """client -> Envoy front -> forwarder -> Envoy mesh -> echo server; the forwarder in the router's
    place and the echo server as breast-cancer's only replica, in Envoy's config as `meshserve up` renders it."""
    package = load_package(package_dir)
    layout = EnvoyLayout(run_dir / "envoy", front=f"127.0.0.1:{free_port()}", mesh=f"127.0.0.1:{free_port()}",
                         admin=f"127.0.0.1:{free_port()}")
    echo = echo_process("echo")
    forwarder = echo_process("forward", layout.mesh)
    key = (package.name, package.version)
    upstreams = UpstreamAddresses(router=[forwarder.address], variants={key: [echo.address]},
                                  slots={key: replica_slots(package.manifest)})
    render(layout, deployment_for(package_dir, [package]), upstreams).write(layout)
    envoy = EnvoyProcess.for_layout(layout, concurrency=get_settings().envoy_concurrency).start()
    return Target(CHAIN, layout.front, [echo, forwarder, envoy])


def adapter_alone(package_dir: Path) -> Target:
    address = f"127.0.0.1:{free_port()}"
    adapter = RunningProcess([sys.executable, "-m", "meshserve.adapters.server", str(package_dir), "--listen", address])
    adapter.wait_for_line("meshserve adapter ready", 60)
    return Target(ADAPTER, address, [adapter])


async def answered(address: str, request, timeout: float = 20.0) -> None:
    """Wait until ADDRESS answers (Envoy serves a cluster once its first health check passed)."""
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        while True:
            try:
                await stub.ModelInfer(request, timeout=2)
                return
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


def estimator_methods() -> list:
    """The estimator's methods the adapter calls for one request, one per output (predict, predict_proba)."""
    package = load_package(MODEL_DIR)
    estimator = load_estimator(package)
    return [getattr(estimator, method) for method in package.options.methods.values()]


def estimator_cpu_per_call(methods: list, seconds: float = 0.3) -> float:
    """CPU seconds of the estimator's own methods on one row, timed in this process."""
    features = np.frombuffer(one_row_request().raw_input_contents[0], dtype=np.float64).reshape(1, 30)
    calls, started, stop_at = 0, time.thread_time(), time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        for method in methods:
            method(features)
        calls += 1
    return (time.thread_time() - started) / calls


async def run(seconds: float, rounds: int) -> None:
    request = one_row_request()
    run_dir = tempfile.TemporaryDirectory(prefix="bench-echo-chain-")
    targets: dict[str, Target] = {}
    methods = estimator_methods()
    try:
        echo = echo_process("echo")
        targets[ECHO] = Target(ECHO, echo.address, [echo])
        package_dir = example_with_batching(Path(run_dir.name) / "models" / "breast_cancer", None)
        targets[CHAIN] = echo_chain(Path(run_dir.name), package_dir)
        targets[ADAPTER] = adapter_alone(package_dir)
        # A store of its own, empty at start, as a new deployment's: the recorder's periodic passes read
        # recent records, so a store that earlier runs filled would make its cost per request drift.
        mesh = start_mesh(package_dir.parent, env={"MESHSERVE_RECORDS_DIR": str(Path(run_dir.name) / "records")})
        targets[MESH] = Target(MESH, mesh.address, [mesh])
        for target in targets.values():
            await answered(target.address, request)
            await measure(target.label, target.address, request, 16, 0.5, warmup_s=0)
        merged, cpu = await rotating_slices(targets, lambda label: request, CONCURRENCIES, seconds, rounds)
        # The estimator's own cost per call, measured in the same run: the median of ROUNDS tries.
        predict_s = [estimator_cpu_per_call(methods) for _ in range(rounds)]
    finally:
        for target in targets.values():
            target.stop()
        run_dir.cleanup()
    predict = sorted(predict_s)[len(predict_s) // 2]
    print()
    print(f"breast-cancer, one row per request, {seconds:g} s per target and concurrency in {rounds} slices "
          f"(ratios against the echo server called directly)")
    print(table([merged[(label, c)] for c in CONCURRENCIES for label in targets], ECHO))
    for concurrency in CONCURRENCIES:
        print()
        print(f"CPU per request, microseconds, concurrency {concurrency} (from /proc, client excluded; "
              "total x against the echo chain)")
        print(cpu_table({label: cpu[(label, concurrency)] for label in targets}, CHAIN))
    print()
    print(f"estimator's own predict + predict_proba on one row, in-process: {predict * 1e6:.0f} us CPU per call")
    print(goal_ratios(cpu, predict))


def goal_ratios(cpu: dict[tuple[str, int], tuple[dict[str, float], int]], predict: float) -> str:
    def per_request(label: str, part: str | None, concurrency: int) -> float:
        used, requests = cpu[(label, concurrency)]
        return (sum(used.values()) if part is None else used.get(part, 0.0)) / max(requests, 1)

    # (name, numerator's target and role, denominator's, CPU taken off the numerator); role None: all processes
    ratios = [
        ("router / echo forwarder", (MESH, "router"), (CHAIN, "forwarder"), 0.0),
        ("mesh's adapter / chain's echo", (MESH, "adapter"), (CHAIN, "echo"), 0.0),
        ("  less estimator predict", (MESH, "adapter"), (CHAIN, "echo"), predict),
        ("adapter alone / echo alone", (ADAPTER, "adapter"), (ECHO, "echo"), 0.0),
        ("  less estimator predict", (ADAPTER, "adapter"), (ECHO, "echo"), predict),
        ("full mesh / echo chain", (MESH, None), (CHAIN, None), 0.0),
    ]
    lines = [f"{'CPU per request ratio':<32}" + "".join(f"{f'conc {c}':>10}" for c in CONCURRENCIES)]
    for name, top, bottom, less in ratios:
        lines.append(f"{name:<32}" + "".join(f"{(per_request(*top, c) - less) / per_request(*bottom, c):>10.2f}"
                                             for c in CONCURRENCIES))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per target and concurrency")
    parser.add_argument("--rounds", type=int, default=6, help="slices the measuring time is cut into")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.rounds))


if __name__ == "__main__":
    main()
