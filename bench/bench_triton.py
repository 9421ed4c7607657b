"""Triton overhead: the digits example (one image per request) directly against meshserve's own
Triton, at its adapter (Triton runtime), and through the whole mesh (one hop: Envoy -> Triton,
the adapter recording from Envoy's side tap), at concurrency 1 and 8, all in one run with the
same closed-loop client. Ratios are against Triton direct. The goals: the tiny model's median
through the mesh at concurrency 1 at most 1.6 times Triton's own; with 5 ms of device time per
batch, at most 1.1 times at concurrency 8.

    .venv/bin/python bench/bench_triton.py [--seconds 5] [--device-ms 5] [--profile]

The shipped digits model costs Triton about 0.2 ms of CPU per request, so any extra process hop
dominates; --device-ms adds a second run where each batch also waits that long (a stand-in for
GPU kernel time, which burns no host CPU) to show the overhead against a model of realistic cost.

--profile also prints the CPU time each process (Envoy, router, adapter, tritonserver, its Python
stub, this client) spends per request, from /proc: where the time goes on a CPU-bound machine.
Needs scripts/setup.sh (nvidia-pytriton and the trained example).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from pathlib import Path

import numpy as np
from tritonclient.grpc import service_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from conftest import start_mesh  # noqa: E402
from load import measure, table  # noqa: E402

EXAMPLE = ROOT / "examples" / "triton_digits"
BASELINE = "Triton direct"
GOALS = {1: 1.6, 8: 1.1}  # concurrency -> most median / Triton direct (1: the tiny model, 8: with device time)


def one_image_request(model_name: str) -> pb.ModelInferRequest:
    image = np.random.default_rng(0).uniform(0, 16, size=(1, 64)).astype(np.float32)
    request = pb.ModelInferRequest(model_name=model_name, raw_input_contents=[image.tobytes()])
    request.inputs.add(name="pixels", datatype="FP32", shape=[1, 64])
    return request


def addresses_from_mesh_output(output: str) -> tuple[str, str]:
    """(Triton's gRPC address, the adapter's address) as the adapter announced them."""
    triton = re.search(r"tritonserver \S+ \(pid \d+\) ready on (\S+),", output).group(1)
    adapter = re.search(r"meshserve adapter ready: \S+ on (\S+)", output).group(1)
    return triton, adapter


def process_tree(pid: int) -> list[int]:
    found = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
            found += process_tree(int(child))
    return found


def cpu_seconds_by_part(mesh_pid: int) -> dict[str, float]:
    """CPU time used so far by each part of the mesh (and by this load generator)."""
    parts = {"client": os.getpid()}
    used: dict[str, float] = {}
    for pid in process_tree(mesh_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        part = next((name for marker, name in PARTS if marker in argv), "meshserve up")
        used[part] = used.get(part, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{parts['client']}/stat").read_text().rpartition(")")[2].split()
    used["client"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


# Which part of the mesh a process is, by a marker in its command line (first match wins).
PARTS = [("triton_python_backend_stub", "Triton Python stub"), ("tritonserver", "tritonserver"),
         ("meshserve.adapters.server", "adapter"), ("meshserve.router.server", "router"),
         ("envoy", "Envoy"), ("meshserve.cli", "meshserve up")]


async def run_all(targets: list[tuple[str, str, pb.ModelInferRequest]], seconds: float, mesh_pid: int | None = None):
    results, cpu_rows = [], []
    for concurrency in (1, 8):
        for label, address, request in targets:
            before = cpu_seconds_by_part(mesh_pid) if mesh_pid else {}
            result = await measure(label, address, request, concurrency, seconds)
            results.append(result)
            if mesh_pid:
                after = cpu_seconds_by_part(mesh_pid)
                # Counts the warm-up too: divide by every request sent, measured or not.
                sent = result.requests * (1 + 1.0 / seconds)
                cpu_rows.append((label, concurrency, {k: 1000 * (after[k] - before.get(k, 0.0)) / sent for k in after}))
    return results, cpu_rows


def print_cpu_rows(cpu_rows) -> None:
    parts = [name for _, name in PARTS if any(name in row for _, _, row in cpu_rows)] + ["client"]
    print("CPU ms per request, by process (where the time goes; 2 cores shared by all of them):")
    print(f"{'target':<28}{'conc':>5}" + "".join(f"{p:>20}" for p in parts) + f"{'total':>8}")
    for label, concurrency, row in cpu_rows:
        print(f"{label:<28}{concurrency:>5}" + "".join(f"{row.get(p, 0.0):>20.3f}" for p in parts)
              + f"{sum(row.values()):>8.3f}")


def package_with_device_time(milliseconds: float) -> Path:
    """A copy of the example whose model also waits `milliseconds` per batch, as a GPU kernel would.

    The digits MLP costs Triton about 0.2 ms of CPU, far less than a real GPU model; the wait stands
    in for device time (it burns no host CPU, as a GPU does not), to show the mesh's overhead
    against a model of realistic cost.
    """
    import shutil
    import tempfile

    target = Path(tempfile.mkdtemp(prefix="bench-triton-")) / "digits"
    shutil.copytree(EXAMPLE, target)
    model = target / "model_repository" / "digits_mlp" / "1" / "model.py"
    model.write_text(model.read_text() + f"""

import time as _time
_score = TritonPythonModel.execute


def _score_after_device_time(self, requests):
    _time.sleep({milliseconds / 1000!r})
    return _score(self, requests)


TritonPythonModel.execute = _score_after_device_time
""")
    return target


def measure_package(package: Path, seconds: float, profile: bool):
    mesh = start_mesh(package)
    try:
        triton, adapter = addresses_from_mesh_output(mesh.output)
        targets = [
            (BASELINE, triton, one_image_request("digits_mlp")),
            ("adapter (Triton runtime)", adapter, one_image_request("digits-triton")),
            ("meshserve (one hop, tap)", mesh.address, one_image_request("digits-triton")),
        ]
        return asyncio.run(run_all(targets, seconds, mesh.proc.pid if profile else None))
    finally:
        mesh.stop()


def report(title: str, measured, goal_at: int) -> None:
    results, cpu_rows = measured
    print(f"\n{title}")
    print(table(results, BASELINE))
    if cpu_rows:
        print_cpu_rows(cpu_rows)
    for concurrency in (1, 8):
        base = next(r for r in results if r.label == BASELINE and r.concurrency == concurrency)
        through = next(r for r in results if r.label.startswith("meshserve") and r.concurrency == concurrency)
        ratio, p99 = through.median_ms / base.median_ms, through.p99_ms / base.p99_ms
        goal = GOALS[goal_at] if concurrency == goal_at else None
        verdict = f" (goal <= {goal:.2f}: {'met' if ratio <= goal else 'NOT met'})" if goal else ""
        print(f"mesh / Triton at concurrency {concurrency}: median {ratio:.2f}{verdict}, p99 {p99:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per target and concurrency")
    parser.add_argument("--device-ms", type=float, default=5.0,
                        help="also measure a copy of the model with this much simulated device time per batch "
                             "(0 skips it)")
    parser.add_argument("--profile", action="store_true", help="also print CPU time per request of each process")
    args = parser.parse_args()

    report(f"digits_mlp as shipped: one 8x8 image per request, {args.seconds:.0f} s per row "
           "(Triton Python backend, CPU)", measure_package(EXAMPLE, args.seconds, args.profile), goal_at=1)
    if args.device_ms > 0:
        report(f"the same model plus {args.device_ms:g} ms simulated device time per batch",
               measure_package(package_with_device_time(args.device_ms), args.seconds, args.profile), goal_at=8)


if __name__ == "__main__":
    main()
