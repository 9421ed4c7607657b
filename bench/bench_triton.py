"""Triton overhead: the digits example (one image per request) directly against meshserve's own
Triton, at its adapter (Triton runtime), and through the whole mesh (Envoy -> router -> Envoy ->
adapter -> Triton), at concurrency 1 and 8, all in one run with the same closed-loop client.
Ratios are against Triton direct. The goal: the mesh adds at most 30% to Triton's median latency
at concurrency 8.

    .venv/bin/python bench/bench_triton.py [--seconds 5] [--profile]

--profile also samples where the adapter process spends its time under concurrency-8 load
through the mesh (cProfile in a copy of the adapter; top functions by own time).
Needs scripts/setup.sh (nvidia-pytriton and the trained example).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path

import numpy as np
from tritonclient.grpc import service_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from conftest import RunningProcess, free_port, start_mesh  # noqa: E402
from load import measure, table  # noqa: E402

EXAMPLE = ROOT / "examples" / "triton_digits"
BASELINE = "Triton direct"
GOAL = 1.30


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


async def run_all(targets: list[tuple[str, str, pb.ModelInferRequest]], seconds: float):
    results = []
    for concurrency in (1, 8):
        for label, address, request in targets:
            results.append(await measure(label, address, request, concurrency, seconds))
    return results


def profile_adapter(seconds: float) -> None:
    """Run a second adapter under cProfile, load it at concurrency 8, print where its time goes."""
    import pstats
    import tempfile

    stats_path = Path(tempfile.mkdtemp()) / "adapter.prof"
    address = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "cProfile", "-o", str(stats_path), "-m", "meshserve.adapters.server",
            str(EXAMPLE), "--listen", address]
    adapter = RunningProcess(argv)
    try:
        adapter.wait_for_line(r"meshserve adapter ready", 120)
        result = asyncio.run(measure("adapter (profiled)", address, one_image_request("digits-triton"), 8, seconds))
        print(f"\nprofiled adapter at concurrency 8: median {result.median_ms:.3f} ms, {result.throughput:.0f} req/s")
    finally:
        adapter.stop()
    stats = pstats.Stats(str(stats_path))
    stats.sort_stats("tottime").print_stats(18)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per target and concurrency")
    parser.add_argument("--profile", action="store_true", help="also profile the adapter under load")
    args = parser.parse_args()

    mesh = start_mesh(EXAMPLE)
    try:
        triton, adapter = addresses_from_mesh_output(mesh.output)
        targets = [
            (BASELINE, triton, one_image_request("digits_mlp")),
            ("adapter (Triton runtime)", adapter, one_image_request("digits-triton")),
            ("meshserve (Envoy+router)", mesh.address, one_image_request("digits-triton")),
        ]
        results = asyncio.run(run_all(targets, args.seconds))
    finally:
        mesh.stop()
    print(f"\ndigits_mlp, one 8x8 image per request, {args.seconds:.0f} s per row (Triton Python backend, CPU)")
    print(table(results, BASELINE))
    base = next(r for r in results if r.label == BASELINE and r.concurrency == 8)
    through = next(r for r in results if r.label.startswith("meshserve") and r.concurrency == 8)
    ratio = through.median_ms / base.median_ms
    verdict = "met" if ratio <= GOAL else "NOT met"
    print(f"\nmesh / Triton median latency at concurrency 8: {ratio:.2f} (goal <= {GOAL:.2f}: {verdict})")
    if args.profile:
        profile_adapter(args.seconds)


if __name__ == "__main__":
    main()
