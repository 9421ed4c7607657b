"""meshserve against MLServer, the peer a Python team would otherwise use, on the very same
scikit-learn model file, in one run.

Targets, each its own processes, one breast-cancer row (30 FP64 features) per request over the
Open Inference Protocol's gRPC ModelInfer, the same load generator for all (load.py):

* MLServer, batching off: `mlserver start` (PyPI mlserver + mlserver-sklearn 1.7, in its own
  environment .venv-mlserver, created on first use) serving examples/breast_cancer/model.joblib,
  adaptive batching off (its default);
* MLServer, batching on: the same with adaptive batching (max_batch_size 16, max_batch_time 2 ms);
* adapter, batching off: breast-cancer's meshserve adapter with the example's model.yaml less
  its `batching:` section, so micro-batching is off, recording to its spool as in a mesh;
* adapter, batching on: the same package with `batching: {max_batch_size: 16, max_wait_us: 2000}`,
  MLServer's settings;
* full mesh, batching off / on: `meshserve up` on a folder holding the adapter's package of the
  same name (one hop, Envoy -> adapter, with the router and the recorder, the drift monitor among
  its judges, running beside it; records and metrics on), into
  an empty store of its own.

Both sides compute the same thing for each request: scikit-learn's predict and predict_proba
on the row. MLServer's sklearn runtime answers only `predict` unless the request names its
outputs, so its requests ask for `predict` and `predict_proba`; meshserve answers `label` and
`probabilities` from model.yaml's `python.methods`. The bench checks the answers agree.

MLServer runs with `parallel_workers` 0: inference in the server's own process, which serves
best on 2 cores (its default, 1, adds one worker process fed over a pipe: measured here, about
1.8 times the CPU per request and less throughput; `--mlserver-workers 0,1,2` measures each).
Also `debug` false (no access log line per request), its metrics on as by default, REST and
metrics on free ports of their own.

At concurrency 1 and 16, in short slices in rotating order so load from elsewhere lands on all
targets alike: requests/s, median and p99, CPU microseconds per request of each process role
(from /proc, the client excluded), then the ratios the goal is stated in: adapter / MLServer
throughput and p99 (batching off against off, on against on) and full mesh / MLServer.

    .venv/bin/python bench/bench_mlserver.py [--seconds 12] [--rounds 4] [--mlserver-workers 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import joblib
import numpy as np
import sklearn
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_envoy import MODEL_DIR, example_with_batching, one_row_request
from conftest import RunningProcess, free_port, start_mesh
from load import Result, measure, rotating_slices, table
from process_cpu import PartsCpu, cpu_table

MODEL_NAME = "breast-cancer"
ARTIFACT = MODEL_DIR / "model.joblib"
MLSERVER_ENV = ROOT / ".venv-mlserver"
# uvloop 0.22 and later stop MLServer 1.7.1's inference workers at start ("There is no current
# event loop in thread 'MainThread'"), so the model never loads with parallel_workers >= 1.
MLSERVER_PACKAGES = ["mlserver==1.7.*", "mlserver-sklearn==1.7.*", "uvloop<0.22"]
BATCH_SIZE, BATCH_WAIT_S = 16, 0.002  # both sides' batching: at most 16 rows, wait at most 2 ms
CONCURRENCIES = (1, 16)
MLSERVER_OFF, MLSERVER_ON = "MLServer, batching off", "MLServer, batching on"
ADAPTER_OFF, ADAPTER_ON = "adapter, batching off", "adapter, batching on"
MESH_OFF, MESH_ON = "full mesh, batching off", "full mesh, batching on"


@dataclass
class Target:
    label: str
    address: str
    request: pb.ModelInferRequest
    process: RunningProcess
    cpu: PartsCpu = field(init=False)

    def __post_init__(self) -> None:
        self.cpu = PartsCpu(self.process.proc.pid)


def mlserver_environment() -> Path:
    """MLServer's own environment beside meshserve's, created on first use, with scikit-learn,
    numpy and joblib pinned to this environment's so the joblib file loads the same. Returns its
    `mlserver` command."""
    pins = [f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}", f"joblib=={joblib.__version__}"]
    command = MLSERVER_ENV / "bin" / "mlserver"
    if not command.exists():
        packages = [*MLSERVER_PACKAGES, *pins]
        print(f"creating {MLSERVER_ENV}: `{sys.executable} -m venv`, then pip install {' '.join(packages)} "
              "(a few minutes, once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_ENV)], check=True)
        installed = subprocess.run([str(MLSERVER_ENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                                    *packages], check=False, capture_output=True, text=True)
        if installed.returncode != 0 or not command.exists():
            raise SystemExit(f"pip install into {MLSERVER_ENV} failed:\n{installed.stdout[-3000:]}"
                             f"{installed.stderr[-3000:]}")
    versions = "import sklearn, numpy, joblib, mlserver as m; print(sklearn.__version__, numpy.__version__, " \
               "joblib.__version__, m.__version__)"
    found = subprocess.run([str(MLSERVER_ENV / "bin" / "python"), "-c", versions],
                           capture_output=True, text=True, check=True).stdout.split()
    wanted = [sklearn.__version__, np.__version__, joblib.__version__]
    if found[:3] != wanted:
        raise SystemExit(f"{MLSERVER_ENV} has scikit-learn, numpy, joblib {found[:3]}, meshserve's .venv {wanted}: "
                         f"remove {MLSERVER_ENV} and run again to recreate it")
    print(f"MLServer {found[3]} from {MLSERVER_ENV} (scikit-learn {found[0]}, numpy {found[1]}, joblib {found[2]})")
    return command


async def ready(address: str, process: RunningProcess, timeout: float = 120) -> None:
    """Wait until the server says it and the model are ready (ServerReady, ModelReady)."""
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        while True:
            try:
                if ((await stub.ServerReady(pb.ServerReadyRequest(), timeout=2)).ready
                        and (await stub.ModelReady(pb.ModelReadyRequest(name=MODEL_NAME), timeout=2)).ready):
                    return
            except grpc.aio.AioRpcError:
                pass
            if process.proc.poll() is not None or time.monotonic() > deadline:
                process.stop()
                raise SystemExit(f"{process.argv[:3]} did not get ready at {address}:\n{process.output[-4000:]}")
            await asyncio.sleep(0.2)


def start_mlserver(command: Path, folder: Path, workers: int, batching: bool) -> tuple[str, RunningProcess]:
    """`mlserver start FOLDER` with a settings.json and a model-settings.json written into FOLDER."""
    grpc_port = free_port()
    (folder / MODEL_NAME).mkdir(parents=True)
    settings = {"host": "127.0.0.1", "grpc_port": grpc_port, "http_port": free_port(), "metrics_port": free_port(),
                "metrics_dir": str(folder / "metrics"), "parallel_workers": workers, "debug": False}
    model = {"name": MODEL_NAME, "implementation": "mlserver_sklearn.SKLearnModel",
             "parameters": {"uri": str(ARTIFACT), "version": "1"}}
    if batching:
        model |= {"max_batch_size": BATCH_SIZE, "max_batch_time": BATCH_WAIT_S}
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    (folder / MODEL_NAME / "model-settings.json").write_text(json.dumps(model, indent=2))
    return f"127.0.0.1:{grpc_port}", RunningProcess([str(command), "start", str(folder)], cwd=folder)


def start_adapter(package: Path) -> tuple[str, RunningProcess]:
    """The adapter alone, recording as it does in a mesh (its spool, no recorder needed)."""
    address = f"127.0.0.1:{free_port()}"
    process = RunningProcess([sys.executable, "-m", "meshserve.adapters.server", str(package), "--listen", address],
                             env={"MESHSERVE_RECORDS_DIR": str(package.parent / "records")})
    try:
        process.wait_for_line("meshserve adapter ready", 120)
    except AssertionError:
        process.stop()
        raise
    return address, process


def mlserver_request() -> pb.ModelInferRequest:
    """The same row and input tensor, asking for predict_proba as well as predict (MLServer's
    sklearn runtime answers only predict when a request names no outputs)."""
    request = one_row_request()
    request.outputs.add(name="predict")
    request.outputs.add(name="predict_proba")
    return request


async def answer(address: str, request: pb.ModelInferRequest) -> dict[str, np.ndarray]:
    dtypes = {"INT64": np.int64, "FP64": np.float64}
    async with grpc.aio.insecure_channel(address) as channel:
        response = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    return {f"{o.name} {o.datatype} {list(o.shape)}": np.frombuffer(raw, dtype=dtypes[o.datatype])
            for o, raw in zip(response.outputs, response.raw_output_contents)}


async def check_answers(targets: dict[str, Target]) -> None:
    """Print what each target answered for the row, and stop if they disagree on the numbers."""
    answers = {label: await answer(t.address, t.request) for label, t in targets.items()}
    for label, outputs in answers.items():
        print(f"  {label} answers " + ", ".join(f"{name} = {values.tolist()}" for name, values in outputs.items()))
    first = [np.concatenate(list(outputs.values())) for outputs in answers.values()]
    if not all(np.allclose(first[0], other) for other in first[1:]):
        raise SystemExit("the targets' answers differ")


async def run(seconds: float, rounds: int, workers: list[int]) -> None:
    if not ARTIFACT.exists():
        raise SystemExit(f"{ARTIFACT} is missing: run scripts/setup.sh (or examples/breast_cancer/train.py)")
    command = mlserver_environment()
    run_dir = tempfile.TemporaryDirectory(prefix="bench-mlserver-")
    tmp = Path(run_dir.name)
    targets: dict[str, Target] = {}
    try:
        for n in workers:
            for batching, label in ((False, MLSERVER_OFF), (True, MLSERVER_ON)):
                label = label.replace("MLServer", f"MLServer w{n}") if len(workers) > 1 else label
                address, process = start_mlserver(command, tmp / label.replace(" ", "-"), n, batching)
                targets[label] = Target(label, address, mlserver_request(), process)
                await ready(address, process)  # one at a time: start-ups compete for the same 2 cores
        address, process = start_adapter(example_with_batching(tmp / "unbatched" / "breast_cancer", None))
        targets[ADAPTER_OFF] = Target(ADAPTER_OFF, address, one_row_request(), process)
        mlservers = {"max_batch_size": BATCH_SIZE, "max_wait_us": int(BATCH_WAIT_S * 1e6)}
        address, process = start_adapter(example_with_batching(tmp / "batched" / "breast_cancer", mlservers))
        targets[ADAPTER_ON] = Target(ADAPTER_ON, address, one_row_request(), process)
        for label, batching in ((MESH_OFF, None), (MESH_ON, mlservers)):
            models = tmp / label.replace(" ", "-").replace(",", "")
            example_with_batching(models / "breast_cancer", batching)
            mesh = start_mesh(models, env={"MESHSERVE_RECORDS_DIR": str(models / "records")})
            targets[label] = Target(label, mesh.address, one_row_request(), mesh)
            await ready(mesh.address, mesh)
        await check_answers(targets)
        for target in targets.values():  # warm every target before the first slice
            await measure(target.label, target.address, target.request, 16, 0.5, warmup_s=0)
        merged, cpu = await rotating_slices(targets, lambda label: targets[label].request, CONCURRENCIES,
                                            seconds, rounds)
    finally:
        for target in targets.values():
            target.process.stop()
        run_dir.cleanup()
    baseline = next(iter(targets))
    print()
    print(f"breast-cancer GradientBoostingClassifier ({ARTIFACT.relative_to(ROOT)}), one row per request, "
          f"predict + predict_proba on both sides, {seconds:g} s per target and concurrency in {rounds} slices; "
          f"MLServer parallel_workers {','.join(map(str, workers))}; ratios against {baseline}")
    print(table([merged[(label, c)] for c in CONCURRENCIES for label in targets], baseline))
    for concurrency in CONCURRENCIES:
        print()
        print(f"CPU per request, microseconds, concurrency {concurrency} (from /proc, client excluded)")
        print(cpu_table({label: cpu[(label, concurrency)] for label in targets}, baseline))
    print()
    print(goal_ratios(merged, list(targets)))
    print(hop_cost(merged, cpu))


def hop_cost(merged: dict[tuple[str, int], Result], cpu: dict) -> str:
    """The limit the mesh is held to: one Envoy hop is all it may add to the adapter alone (both
    with records on): median at concurrency 1 at most +0.4 ms, CPU per inference at most +0.3 ms,
    Envoy's own CPU per inference at most 250 us."""
    lines = []
    for mesh, alone in ((MESH_OFF, ADAPTER_OFF), (MESH_ON, ADAPTER_ON)):
        added = merged[(mesh, 1)].median_ms - merged[(alone, 1)].median_ms
        (used, requests), (alone_used, alone_requests) = cpu[(mesh, 1)], cpu[(alone, 1)]
        cpu_added = (sum(used.values()) / max(requests, 1) - sum(alone_used.values()) / max(alone_requests, 1)) * 1e3
        envoy = used.get("envoy", 0.0) / max(requests, 1) * 1e6
        lines.append(f"{mesh} against {alone}, concurrency 1: median +{added:.3f} ms (goal <= 0.4), CPU per "
                     f"inference +{cpu_added:.3f} ms (goal <= 0.3), Envoy's CPU per inference {envoy:.0f} us "
                     "(goal <= 250)")
    return "\n".join(lines)


def goal_ratios(merged: dict[tuple[str, int], Result], labels: list[str]) -> str:
    """The goal's ratios against the first MLServer pair measured: throughput (goal 1.5 for the
    adapter, 1.0 for the mesh at concurrency 16) and p99 (goal at most 1.0)."""
    mlserver_off, mlserver_on = labels[0], labels[1]
    pairs = [("adapter / MLServer, batching off", ADAPTER_OFF, mlserver_off, 1.5),
             ("adapter / MLServer, batching on", ADAPTER_ON, mlserver_on, 1.5),
             ("full mesh / MLServer, batching off", MESH_OFF, mlserver_off, 0.9),
             ("full mesh / MLServer, batching on", MESH_ON, mlserver_on, 1.0)]
    lines = [f"{'ratio':<38}" + "".join(f"{f'req/s x c{c}':>13}{f'p99 x c{c}':>11}" for c in CONCURRENCIES)
             + "   goal at concurrency 16"]
    for name, mine, theirs, goal in pairs:
        row = f"{name:<38}"
        for c in CONCURRENCIES:
            a, b = merged[(mine, c)], merged[(theirs, c)]
            row += f"{a.throughput / b.throughput:>13.2f}{a.p99_ms / b.p99_ms:>11.2f}"
        a, b = merged[(mine, 16)], merged[(theirs, 16)]
        met = a.throughput / b.throughput >= goal and (goal <= 1.0 or a.p99_ms <= b.p99_ms)
        row += f"   req/s >= {goal:g}x" + (" and p99 <= 1x" if goal > 1 else "") + (": met" if met else ": not met")
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="measuring time per target and concurrency")
    parser.add_argument("--rounds", type=int, default=4, help="slices the measuring time is cut into")
    parser.add_argument("--mlserver-workers", default="0",
                        help="MLServer's parallel_workers; a comma-separated list measures each (ratios use the first)")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.rounds, [int(n) for n in args.mlserver_workers.split(",")]))


if __name__ == "__main__":
    main()
