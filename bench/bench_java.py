"""Java overhead: the Weka J48 example (one row per request) scored in-process by plain Java,
by the Java runtime inside Python, at its adapter over gRPC, and through the mesh (router ->
adapter), at concurrency 1 and 16 in one run. Ratios are against plain Java in-process.
Also prints what moving a batch into Java costs (flat double[] vs double[][]).

    .venv/bin/python bench/bench_java.py [--seconds 5]

Needs scripts/setup.sh (builds bench/java/build/weka-timing-loop.jar and trains the model).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tritonclient.grpc import service_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from conftest import RunningProcess, free_port, meshserve_argv, start_mesh  # noqa: E402
from load import closed_loop, measure  # noqa: E402

WEKA_JAR = "/usr/share/java/weka.jar"
WEKA_DIR = ROOT / "examples" / "java_weka_j48"
TIMING_JAR = ROOT / "bench" / "java" / "build" / "weka-timing-loop.jar"
BASELINE = "Java in-process"


@dataclass
class Row:
    label: str
    concurrency: int
    requests: int
    seconds: float
    median_us: float
    p99_us: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


def one_row_request() -> pb.ModelInferRequest:
    row = np.array([[6.3, 2.8, 4.9, 1.6]])
    request = pb.ModelInferRequest(model_name="iris_j48", raw_input_contents=[row.tobytes()])
    request.inputs.add(name="measurements", datatype="FP64", shape=[1, 4])
    return request


def java_loop(seconds: float) -> list[Row]:
    """The baseline: the same per-request work in a plain Java timing loop (bench/java/)."""
    out = subprocess.run(
        ["java", "-Xmx1g", "-cp", f"{WEKA_JAR}:{TIMING_JAR}", "WekaTimingLoop",
         str(WEKA_DIR / "j48.model"), str(WEKA_DIR / "header.model"), str(WEKA_DIR / "data" / "iris.arff"),
         str(seconds), "1", "16"], capture_output=True, text=True, check=True, timeout=seconds * 4 + 60).stdout
    rows = []
    for line in out.splitlines():
        r = json.loads(line)
        rows.append(Row(BASELINE, r["concurrency"], r["requests"], r["seconds"], r["p50_us"], r["p99_us"]))
    return rows


async def grpc_target(label: str, address: str, concurrency: int, seconds: float) -> Row:
    r = await measure(label, address, one_row_request(), concurrency, seconds)
    if r.errors:
        print(f"  {r.errors} errors for {label}")
    ordered = sorted(r.latencies_ms)
    return Row(label, concurrency, r.requests, r.seconds, statistics.median(ordered) * 1000,
               ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000)


async def runtime_in_process(concurrency: int, seconds: float) -> Row:
    """JavaRuntime.predict called from asyncio in this process: JPype and thread-pool cost, no gRPC.
    Runs after every process is started: this process must not fork once its JVM runs."""
    from meshserve.adapters.java.runtime import JavaRuntime
    from meshserve.core.model_package import load_package

    runtime = JavaRuntime()
    await runtime.load(load_package(WEKA_DIR))
    inputs = {"measurements": np.array([[6.3, 2.8, 4.9, 1.6]])}

    async def call() -> bool:
        await runtime.predict(inputs)
        return True

    result = await closed_loop("JavaRuntime in Python", call, concurrency, seconds)
    return Row(result.label, concurrency, result.requests, result.seconds, result.median_ms * 1000,
               result.p99_ms * 1000)


def conversion_cost() -> str:
    """Moving a batch of rows into Java: one flat double[] (a memcpy) against a double[][]."""
    import jpype

    lines = ["moving rows into Java (median of 200):"]
    for rows in (1, 1000):
        x = np.random.default_rng(0).normal(size=(rows, 4))
        timings = {}
        for label, convert in (("flat double[]", lambda: jpype.JArray(jpype.JDouble)(x.reshape(-1))),
                               ("double[][]", lambda: jpype.JArray(jpype.JDouble, 2)([r for r in x]))):
            samples = []
            for _ in range(200):
                t = time.perf_counter()
                convert()
                samples.append((time.perf_counter() - t) * 1e6)
            timings[label] = statistics.median(samples)
        lines.append(f"  {rows:>5} x 4: flat double[] {timings['flat double[]']:8.1f} us   "
                     f"double[][] {timings['double[][]']:8.1f} us   ({timings['double[][]'] / timings['flat double[]']:.1f}x)")
    return "\n".join(lines)


def table(rows: list[Row]) -> str:
    base = {r.concurrency: r for r in rows if r.label == BASELINE}
    out = [f"{'target':<26}{'conc':>5}{'median us':>11}{'p99 us':>10}{'req/s':>10}{'median x':>11}{'req/s x':>10}"]
    for r in sorted(rows, key=lambda r: r.concurrency):
        b = base[r.concurrency]
        out.append(f"{r.label:<26}{r.concurrency:>5}{r.median_us:>11.2f}{r.p99_us:>10.1f}{r.throughput:>10.0f}"
                   f"{r.median_us / b.median_us:>11.4g}{r.throughput / b.throughput:>10.3g}")
    return "\n".join(out)


async def run(seconds: float) -> None:
    if not TIMING_JAR.exists() or not (WEKA_DIR / "j48.model").exists():
        raise SystemExit("run scripts/setup.sh first (builds the timing loop and trains the Weka model)")
    print(f"measuring {BASELINE} at concurrency 1 and 16 for {seconds:.0f} s each ...", flush=True)
    rows = java_loop(seconds)
    adapter_address = f"127.0.0.1:{free_port()}"
    adapter = RunningProcess(meshserve_argv("adapter", str(WEKA_DIR), "--listen", adapter_address))
    try:
        adapter.wait_for_line("meshserve adapter ready", 60)
        mesh = start_mesh(WEKA_DIR)
    except Exception:
        adapter.stop()
        raise
    try:
        for concurrency in (1, 16):
            for label, address in (("adapter (gRPC)", adapter_address), ("mesh: router -> adapter", mesh.address)):
                print(f"measuring {label} at concurrency {concurrency} for {seconds:.0f} s ...", flush=True)
                rows.append(await grpc_target(label, address, concurrency, seconds))
    finally:
        adapter.stop()
        mesh.stop()
    for concurrency in (1, 16):
        print(f"measuring JavaRuntime in Python at concurrency {concurrency} for {seconds:.0f} s ...", flush=True)
        rows.append(await runtime_in_process(concurrency, seconds))
    print()
    print("Weka J48 (iris), one row per request; ratios against plain Java in-process at the same concurrency")
    print(table(rows))
    print()
    print(conversion_cost())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per target and concurrency")
    asyncio.run(run(parser.parse_args().seconds))


if __name__ == "__main__":
    main()
