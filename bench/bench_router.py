"""Router overhead: the breast-cancer example called directly at its adapter and through the
router, at concurrency 1 and 16, in one run. Ratios are against the direct call.

    .venv/bin/python bench/bench_router.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from tritonclient.grpc import service_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from conftest import RunningProcess, free_port, meshserve_argv, start_mesh  # noqa: E402
from load import measure, table  # noqa: E402


def one_row_request() -> pb.ModelInferRequest:
    row = load_breast_cancer().data[:1]
    request = pb.ModelInferRequest(model_name="breast-cancer", raw_input_contents=[np.ascontiguousarray(row).tobytes()])
    request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    return request


async def run(seconds: float) -> None:
    adapter_address = f"127.0.0.1:{free_port()}"
    adapter = RunningProcess(meshserve_argv("adapter", str(ROOT / "examples" / "breast_cancer"), "--listen", adapter_address))
    adapter.wait_for_line("meshserve adapter ready", 60)
    mesh = start_mesh(ROOT / "examples" / "breast_cancer", "--no-envoy")
    request = one_row_request()
    results = []
    try:
        for concurrency in (1, 16):
            for label, address in (("direct adapter", adapter_address), ("router -> adapter", mesh.address)):
                print(f"measuring {label} at concurrency {concurrency} for {seconds:.0f} s ...", flush=True)
                results.append(await measure(label, address, request, concurrency, seconds))
    finally:
        adapter.stop()
        mesh.stop()
    print()
    print("breast-cancer, one row per request (ratios against the direct adapter call)")
    print(table(results, "direct adapter"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per target and concurrency")
    asyncio.run(run(parser.parse_args().seconds))


if __name__ == "__main__":
    main()
