"""Resident memory of the mesh: every process of `meshserve up` over the bundled examples by role,
what one extra replica of a Python, an R and a Java variant costs, and whether any process grows
while breast-cancer takes 100,000 one-row requests through the whole mesh (records and metrics on).

    .venv/bin/python bench/bench_memory.py [--requests 100000] [--skip-replicas]

Memory is read from /proc: RSS (resident pages, shared ones counted in every process that maps
them) and PSS from smaps_rollup (each shared page divided among the processes sharing it, so R's
forked workers and Envoy's threads add up to what the machine really holds). The load is 16
closed-loop grpc.aio callers; after a warm-up, every process's RSS is sampled each tenth of the
requests. A process is flagged as growing when its RSS rises more than 5% from the 20% sample to
the last one and rises in at least three quarters of the steps between them.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import yaml
from sklearn.datasets import load_breast_cancer
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_cold_start import request_for  # noqa: E402
from conftest import EXAMPLES, start_mesh  # noqa: E402
from process_cpu import _part, process_tree  # noqa: E402

MIB = 2**20
# One variant per runtime for the extra-replica cost: (example folder, the inputs of one row).
REPLICA_EXAMPLES = {
    "python": ("breast_cancer", {"features": np.full((1, 30), 1.0)}),
    "r": ("r_infert_glm", {"education": np.array([b"6-11yrs"], dtype=object), "age": np.array([30.0]),
                           "parity": np.array([2], dtype=np.int32), "history": np.array([[0.0, 1.0]])}),
    "r, 2 forked workers": ("r_iris_randomforest", {"measurements": np.array([[5.1, 3.5, 1.4, 0.2]])}),
    "java": ("java_loan_default", {"applicant": np.array([[50.0, 0.3, 40.0, 1.0]])}),
}
GROWTH_FLAG = 0.05  # flagged: more than this from the 20% sample to the last ...
STEADY = 0.75  # ... rising in at least this share of the steps between them


# --- reading memory -------------------------------------------------------------------------------

def resident(pid: int) -> tuple[int, int | None] | None:
    """(RSS, PSS) in bytes; PSS is None where smaps_rollup cannot be read; None once the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]  # after the address range line
        kib = {line.split()[0]: int(line.split()[1]) for line in lines}
        return kib["Rss:"] * 1024, kib["Pss:"] * 1024
    except (OSError, KeyError, IndexError, ValueError):
        pass
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024, None
    except OSError:
        pass
    return None


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def role(pid: int) -> str:
    """What the process is in the mesh: process_cpu's part, told apart further by model and kind."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    text = b" ".join(argv).decode(errors="replace")
    part = _part(pid)
    if part == "adapter":
        # R's forked processes keep the adapter's command line: the adapter forks the zygote, which forks workers.
        package = Path(argv[argv.index(b"meshserve.adapters.server") + 1].decode()).name
        forks = 0
        while _part(pid := _parent(pid)) == "adapter":
            forks += 1
        return (f"adapter {package}", f"R zygote ({package})", f"R worker ({package})")[min(forks, 2)]
    if part == "envoy":
        return "envoy (supervisor)" if "meshserve.envoy.process" in text else "envoy"
    if "triton_python_backend_stub" in text:
        return "triton python stub"
    return part


def snapshot(root: int) -> dict[int, tuple[str, int, int | None]]:
    """pid -> (role, RSS, PSS) for every process of the mesh started as ROOT."""
    found = {}
    for pid in process_tree(root):
        if (memory := resident(pid)) is not None:
            found[pid] = (role(pid), *memory)
    return found


def by_role(snap: dict[int, tuple[str, int, int | None]]) -> dict[str, tuple[int, int, int]]:
    """role -> (processes, RSS, PSS) summed."""
    roles: dict[str, tuple[int, int, int]] = {}
    for name, rss, pss in snap.values():
        count, rss_sum, pss_sum = roles.get(name, (0, 0, 0))
        roles[name] = (count + 1, rss_sum + rss, pss_sum + (pss or 0))
    return dict(sorted(roles.items()))


def mib(value: float) -> str:
    return f"{value / MIB:.1f}"


def thousands(requests: int) -> str:
    return f"{requests / 1000:g}k"


# --- meshes over a chosen set of examples ---------------------------------------------------------

def models_folder(packages: list[str], spec: dict | None) -> Path:
    """A temporary models folder linking to the bundled example PACKAGES, with SPEC as meshserve.yaml
    (None: the bundled examples' own), so records and run files stay out of examples/."""
    folder = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    for name in packages:
        (folder / name).symlink_to(EXAMPLES / name, target_is_directory=True)
    if spec is None:
        shutil.copy(EXAMPLES / "meshserve.yaml", folder / "meshserve.yaml")
    else:
        (folder / "meshserve.yaml").write_text(yaml.safe_dump(spec))
    return folder


def bundled_examples() -> list[str]:
    packages = sorted(p.parent.name for p in EXAMPLES.glob("*/model.yaml"))
    if not (EXAMPLES / "triton_digits/model_repository/digits_mlp/1/weights.npz").exists():
        print("triton_digits left out: its weights are not trained (scripts/setup.sh trains them)")
        packages.remove("triton_digits")
    return packages


# --- load -----------------------------------------------------------------------------------------

def one_row_request() -> pb.ModelInferRequest:
    row = load_breast_cancer().data[:1]
    request = pb.ModelInferRequest(model_name="breast-cancer", raw_input_contents=[np.ascontiguousarray(row).tobytes()])
    request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    return request


async def send(address: str, request: pb.ModelInferRequest, total: int, concurrency: int,
               every: int = 0, at_every=None) -> int:
    """TOTAL requests from CONCURRENCY closed-loop callers; AT_EVERY(done) after each EVERY answers.
    Returns the number of failed requests."""
    tickets = iter(range(total))
    done = errors = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        async def caller() -> None:
            nonlocal done, errors
            for _ in tickets:
                try:
                    await stub.ModelInfer(request, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1
                done += 1
                if every and done % every == 0:
                    at_every(done)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return errors


# --- the three measurements -----------------------------------------------------------------------

def print_processes(snap: dict[int, tuple[str, int, int | None]]) -> None:
    print("| process | pid | RSS MiB | PSS MiB |")
    print("|---|---|---|---|")
    for pid, (name, rss, pss) in sorted(snap.items(), key=lambda item: (item[1][0], item[0])):
        print(f"| {name} | {pid} | {mib(rss)} | {mib(pss) if pss is not None else 'n/a'} |")
    print(f"| **total** ({len(snap)} processes) | | {mib(sum(s[1] for s in snap.values()))} "
          f"| {mib(sum(s[2] or 0 for s in snap.values()))} |")


def replica_cost(runtime: str) -> None:
    folder_name, inputs = REPLICA_EXAMPLES[runtime]
    manifest = yaml.safe_load((EXAMPLES / folder_name / "model.yaml").read_text())
    model, version = manifest["name"], str(manifest["version"])
    message = request_for(model, inputs, manifest)
    totals = {}
    for replicas in (1, 2):
        folder = models_folder([folder_name], {"models": {model: {"variants": [
            {"version": version, "weight": 1, "replicas": replicas}]}}})
        mesh = start_mesh(folder, timeout=300)
        try:
            errors = asyncio.run(send(mesh.address, message, 200, 4))  # every replica answers some
            time.sleep(2)
            totals[replicas] = by_role(snapshot(mesh.proc.pid))
        finally:
            mesh.stop()
            shutil.rmtree(folder, ignore_errors=True)
        if errors:
            print(f"  ({errors} of 200 warm-up requests failed with {replicas} replicas)")
    one, two = totals[1], totals[2]
    delta = {name: tuple(two.get(name, (0, 0, 0))[i] - one.get(name, (0, 0, 0))[i] for i in range(3))
             for name in sorted(set(one) | set(two))}
    changed = ", ".join(f"{name} {'+' if d[0] >= 0 else ''}{d[0]} proc, RSS {mib(d[1])}, PSS {mib(d[2])}"
                        for name, d in delta.items() if d[0] or abs(d[1]) > MIB)
    rss = [sum(v[1] for v in t.values()) for t in (one, two)]
    pss = [sum(v[2] for v in t.values()) for t in (one, two)]
    print(f"| {runtime} ({model}) | {mib(rss[0])} / {mib(rss[1])} | {mib(rss[1] - rss[0])} "
          f"| {mib(pss[0])} / {mib(pss[1])} | {mib(pss[1] - pss[0])} | {changed} |", flush=True)


def growth(mesh, requests: int, concurrency: int) -> None:
    request = one_row_request()
    warmup = max(requests // 50, 500)
    print(f"\nwarming up with {warmup} requests ...", flush=True)
    asyncio.run(send(mesh.address, request, warmup, concurrency))
    every = requests // 10
    samples: dict[int, dict[int, tuple[str, int, int | None]]] = {}

    def sample(done: int) -> None:
        samples[done] = snapshot(mesh.proc.pid)
        print(f"  {done} requests, {time.monotonic() - started:.0f} s", flush=True)

    print(f"sending {requests} one-row requests to breast-cancer at concurrency {concurrency} ...", flush=True)
    started = time.monotonic()
    errors = asyncio.run(send(mesh.address, request, requests, concurrency, every, sample))
    elapsed = time.monotonic() - started
    print(f"{requests} requests in {elapsed:.0f} s ({requests / elapsed:.0f}/s), {errors} failed")

    marks = sorted(samples)
    pids = [pid for pid in samples[marks[0]] if all(pid in samples[m] for m in marks)]
    if missing := {samples[m][pid][0] for m in marks for pid in samples[m] if pid not in pids}:
        print(f"not in every sample (started or restarted during the run): {', '.join(sorted(missing))}")
    print("\nRSS MiB by process after N requests (after the warm-up)\n")
    first, second, last = thousands(marks[0]), thousands(marks[1]), thousands(marks[-1])
    print("| process | " + " | ".join(thousands(m) for m in marks) + f" | {first} -> {last} | {second} -> {last} | grows |")
    print("|---|" + "---|" * (len(marks) + 3))
    flagged = []
    for pid in sorted(pids, key=lambda p: (samples[marks[0]][p][0], p)):
        series = [samples[m][pid][1] for m in marks]
        later = series[1:]  # from the second sample (20% of the requests) on
        rising = sum(b > a for a, b in itertools.pairwise(later))
        grows = later[-1] > later[0] * (1 + GROWTH_FLAG) and rising >= STEADY * (len(later) - 1)
        name = f"{samples[marks[0]][pid][0]} [{pid}]"
        if grows:
            flagged.append(name)
        print(f"| {name} | " + " | ".join(mib(v) for v in series)
              + f" | {mib(series[-1] - series[0])} | {(later[-1] / later[0] - 1) * 100:+.1f}% | "
              f"{'**yes**' if grows else 'no'} |")
    totals = [sum(samples[m][p][1] for p in pids) for m in marks]
    print("| **total RSS** | " + " | ".join(mib(v) for v in totals) + f" | {mib(totals[-1] - totals[0])} "
          f"| {(totals[-1] / totals[1] - 1) * 100:+.1f}% | |")
    print(f"\ngrowing steadily (>{GROWTH_FLAG:.0%} from {second} to {last}, rising in {STEADY:.0%} of the steps): "
          f"{', '.join(flagged) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="requests of the growth run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--skip-replicas", action="store_true", help="leave out the extra-replica meshes")
    args = parser.parse_args()

    packages = bundled_examples()
    folder = models_folder(packages, None)
    mesh = start_mesh(folder, timeout=300)
    try:
        time.sleep(5)  # let start-up finish its lazy work (the router's judging imports, first scrapes)
        print(f"\nmeshserve up over the bundled examples ({', '.join(packages)}), idle after start\n")
        print_processes(snapshot(mesh.proc.pid))
        growth(mesh, args.requests, args.concurrency)
    finally:
        mesh.stop()
        shutil.rmtree(folder, ignore_errors=True)

    if not args.skip_replicas:
        print("\none extra replica: a mesh of that one variant with replicas 1, then 2 (200 requests each first)\n")
        print("| variant | RSS MiB 1 / 2 replicas | RSS delta | PSS MiB 1 / 2 replicas | PSS delta | by role |")
        print("|---|---|---|---|---|---|")
        for runtime in REPLICA_EXAMPLES:
            replica_cost(runtime)


if __name__ == "__main__":
    main()
