"""Envoy's cost on the request path: client -> Envoy -> router -> Envoy -> adapter, against the
same model called at its adapter and through the router without Envoy, at concurrency 1 and 16,
in one run. Ratios are against the direct adapter call. The full path is measured with Envoy
on one worker thread and on two (the default), the choice for a 2-core machine.

    .venv/bin/python bench/bench_envoy.py [--seconds 6] [--rounds 6]
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
from load import Result, merge_results, measure, table  # noqa: E402

MODEL_DIR = ROOT / "examples" / "breast_cancer"


def example_with_batching(folder: Path, batching: dict | None) -> Path:
    """breast-cancer's package with model.yaml's `batching:` section replaced by BATCHING (None: no
    micro-batching), its other files linked, so the adapter loads the very same model.joblib."""
    import yaml

    folder.mkdir(parents=True)
    for item in MODEL_DIR.iterdir():
        if item.is_file() and item.name != "model.yaml":
            (folder / item.name).symlink_to(item)
    manifest = yaml.safe_load((MODEL_DIR / "model.yaml").read_text())
    manifest.pop("batching", None)
    if batching is not None:
        manifest["batching"] = batching
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def one_row_request() -> pb.ModelInferRequest:
    row = load_breast_cancer().data[:1]
    request = pb.ModelInferRequest(model_name="breast-cancer", raw_input_contents=[np.ascontiguousarray(row).tobytes()])
    request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    return request


async def run(seconds: float, rounds: int) -> None:
    request = one_row_request()
    adapter_address = f"127.0.0.1:{free_port()}"
    starters = [
        ("direct adapter", lambda: _adapter(adapter_address)),
        ("router (no Envoy)", lambda: start_mesh(MODEL_DIR, "--no-envoy")),
        ("Envoy>router>Envoy (1 wkr)", lambda: start_mesh(MODEL_DIR, env={"MESHSERVE_ENVOY_CONCURRENCY": "1"})),
        ("Envoy>router>Envoy (2 wkr)", lambda: start_mesh(MODEL_DIR, env={"MESHSERVE_ENVOY_CONCURRENCY": "2"})),
    ]
    processes = {}
    merged: dict[tuple[str, int], Result] = {}
    try:
        for label, start in starters:
            processes[label] = start()
        # Short slices in rotating order, so a burst of load from elsewhere on a shared machine
        # spreads over every target instead of landing on one.
        for round_number in range(rounds):
            order = list(processes)
            order = order[round_number % len(order):] + order[:round_number % len(order)]
            for concurrency in (1, 16):
                for label in order:
                    print(f"round {round_number + 1}/{rounds}: {label} at concurrency {concurrency}", flush=True)
                    part = await measure(label, processes[label].address, request, concurrency,
                                         seconds / rounds, warmup_s=0.3)
                    merged[(label, concurrency)] = merge_results(merged.get((label, concurrency)), part)
    finally:
        for process in processes.values():
            process.stop()
    print()
    print(f"breast-cancer, one row per request, {seconds:.0f} s per target in {rounds} slices "
          "(ratios against the direct adapter call)")
    print(table([merged[(label, c)] for c in (1, 16) for label, _ in starters], "direct adapter"))


def _adapter(address: str) -> RunningProcess:
    adapter = RunningProcess(meshserve_argv("adapter", str(MODEL_DIR), "--listen", address))
    adapter.wait_for_line("meshserve adapter ready", 60)
    adapter.address = address
    return adapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per target and concurrency")
    parser.add_argument("--rounds", type=int, default=6, help="slices the measuring time is cut into")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.rounds))


if __name__ == "__main__":
    main()
