"""Envoy's cost on the request path: client -> Envoy -> router -> Envoy -> adapter, against the
same model called at its adapter and through the router without Envoy, at concurrency 1 and 16,
in one run. Ratios are against the direct adapter call. The full path is measured with Envoy
on one worker thread (the default) and on two, to show why one suits a 2-core machine.

    .venv/bin/python bench/bench_envoy.py [--seconds 5]
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

MODEL_DIR = ROOT / "examples" / "breast_cancer"


def one_row_request() -> pb.ModelInferRequest:
    row = load_breast_cancer().data[:1]
    request = pb.ModelInferRequest(model_name="breast-cancer", raw_input_contents=[np.ascontiguousarray(row).tobytes()])
    request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    return request


async def run(seconds: float) -> None:
    request = one_row_request()
    adapter_address = f"127.0.0.1:{free_port()}"
    targets = [
        ("direct adapter", lambda: _adapter(adapter_address)),
        ("router (no Envoy)", lambda: start_mesh(MODEL_DIR, "--no-envoy")),
        ("Envoy>router>Envoy (1 wkr)", lambda: start_mesh(MODEL_DIR, env={"MESHSERVE_ENVOY_CONCURRENCY": "1"})),
        ("Envoy>router>Envoy (2 wkr)", lambda: start_mesh(MODEL_DIR, env={"MESHSERVE_ENVOY_CONCURRENCY": "2"})),
    ]
    results = []
    # One target at a time: on 2 cores an idle mesh beside the measured one would skew it.
    for label, start in targets:
        process = start()
        try:
            for concurrency in (1, 16):
                print(f"measuring {label} at concurrency {concurrency} for {seconds:.0f} s ...", flush=True)
                results.append(await measure(label, process.address, request, concurrency, seconds))
        finally:
            process.stop()
    print()
    print("breast-cancer, one row per request (ratios against the direct adapter call)")
    print(table(sorted(results, key=lambda r: r.concurrency), "direct adapter"))


def _adapter(address: str) -> RunningProcess:
    adapter = RunningProcess(meshserve_argv("adapter", str(MODEL_DIR), "--listen", address))
    adapter.wait_for_line("meshserve adapter ready", 60)
    adapter.address = address
    return adapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per target and concurrency")
    asyncio.run(run(parser.parse_args().seconds))


if __name__ == "__main__":
    main()
