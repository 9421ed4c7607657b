"""The REST binding's cost: breast-cancer through the whole mesh over HTTP/REST (JSON tensors, and
binary tensors) against the same mesh over gRPC, at concurrency 1 and 16, in one run. Ratios are
against gRPC. REST adds an HTTP/1.1 hop inside the router's process (aiohttp) and, for JSON, the
parsing and printing of values.

    .venv/bin/python bench/bench_rest.py [--seconds 6] [--rounds 6] [--rows 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import numpy as np
from sklearn.datasets import load_breast_cancer
from tritonclient.grpc import service_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from conftest import start_mesh  # noqa: E402
from load import Result, merge_results, closed_loop, measure, table  # noqa: E402

MODEL_DIR = ROOT / "examples" / "breast_cancer"
GRPC = "gRPC (raw tensors)"


def bodies(rows: np.ndarray) -> dict[str, tuple[bytes, dict[str, str]]]:
    shape = list(rows.shape)
    as_json = json.dumps({"inputs": [{"name": "features", "shape": shape, "datatype": "FP64", "data": rows.tolist()}]})
    header = json.dumps({"inputs": [{"name": "features", "shape": shape, "datatype": "FP64",
                                     "parameters": {"binary_data_size": rows.nbytes}}],
                         "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in ("label", "probabilities")]})
    return {
        "REST JSON": (as_json.encode(), {"Content-Type": "application/json"}),
        "REST binary": (header.encode() + rows.tobytes(), {"Content-Type": "application/octet-stream",
                                                           "Inference-Header-Content-Length": str(len(header))}),
    }


async def rest_load(label: str, url: str, body: bytes, headers: dict[str, str], concurrency: int,
                    seconds: float) -> Result:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def call() -> bool:
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    return response.status == 200
            except aiohttp.ClientError:
                return False
        return await closed_loop(label, call, concurrency, seconds, warmup_s=0.3)


async def run(seconds: float, rounds: int, rows: int) -> None:
    data = load_breast_cancer().data[:rows]
    request = pb.ModelInferRequest(model_name="breast-cancer", raw_input_contents=[np.ascontiguousarray(data).tobytes()])
    request.inputs.add(name="features", datatype="FP64", shape=list(data.shape))
    rest = bodies(data)
    labels = [GRPC, *rest]
    mesh = start_mesh(MODEL_DIR)
    url = f"http://{mesh.address}/v2/models/breast-cancer/infer"
    merged: dict[tuple[str, int], Result] = {}
    try:
        # Short slices in rotating order, so a burst of load from elsewhere on a shared machine
        # spreads over every target instead of landing on one.
        for round_number in range(rounds):
            order = labels[round_number % len(labels):] + labels[:round_number % len(labels)]
            for concurrency in (1, 16):
                for label in order:
                    print(f"round {round_number + 1}/{rounds}: {label} at concurrency {concurrency}", flush=True)
                    if label == GRPC:
                        part = await measure(label, mesh.address, request, concurrency, seconds / rounds, warmup_s=0.3)
                    else:
                        part = await rest_load(label, url, *rest[label], concurrency, seconds / rounds)
                    merged[(label, concurrency)] = merge_results(merged.get((label, concurrency)), part)
    finally:
        mesh.stop()
    print()
    print(f"breast-cancer, {rows} row(s) per request through Envoy, router, Envoy, adapter; {seconds:.0f} s per "
          f"target in {rounds} slices (ratios against gRPC)")
    print(table([merged[(label, c)] for c in (1, 16) for label in labels], GRPC))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per target and concurrency")
    parser.add_argument("--rounds", type=int, default=6, help="slices the measuring time is cut into")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.rounds, args.rows))


if __name__ == "__main__":
    main()
