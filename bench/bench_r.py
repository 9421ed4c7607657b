"""The iris randomForest served by plumber (what an R team would otherwise use) versus meshserve.

Targets, all on this machine in the same run, all single-row requests:
  plumber HTTP                  bench/plumber_iris.R over HTTP/1.1, JSON (the baseline)
  adapter, no batching          `meshserve adapter` over gRPC, R on the adapter's R thread
  adapter, batching             the same with micro-batching on (max 64 rows, 500 us)
  adapter, 2 workers            two forked R workers (r.workers: 2), batching off
  adapter, 2 workers, batching  both
  meshserve up, batching        the whole mesh: one hop, Envoy -> adapter, batching on
  meshserve up, 2 workers, batching   the same with two forked R workers, one batch on each
Latency (median, p99) at concurrency 1, throughput at 8, 16 and 32; ratios against plumber. All
targets run at once and are measured in short slices whose order rotates each round, so load
from elsewhere on a shared machine lands on every target alike.

    .venv/bin/python bench/bench_r.py [--seconds 6] [--rounds 3] [--only plumber,adapter]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml
from tritonclient.grpc import service_pb2 as pb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import Result, closed_loop, measure, merge_results, table  # noqa: E402
from meshserve.core.ports import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IRIS = ROOT / "examples" / "r_iris_randomforest"
ROW = [5.9, 3.0, 5.1, 1.8]
FEATURES = ["Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width"]
CONCURRENCY = (1, 8, 16, 32)
BASELINE = "plumber HTTP"



def start(argv: list[str], ready: str, port: int, timeout: float = 120) -> subprocess.Popen:
    """Start a server, wait for its ready line and its port, and keep draining its output."""
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if ready in line:
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{argv[:3]} did not print '{ready}'")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    while time.monotonic() < deadline:  # plumber prints before it listens
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{argv[:3]} is not listening on {port}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def package_copy(folder: Path, name: str, max_batch_size: int, workers: int) -> Path:
    target = folder / name
    shutil.copytree(IRIS, target)
    manifest = yaml.safe_load((target / "model.yaml").read_text())
    manifest["batching"] = {"max_batch_size": max_batch_size, "max_wait_us": 500}
    if workers > 1 and max_batch_size > 1:  # one batch on each R worker, as the two-worker example does
        manifest["batching"]["concurrency"] = workers
    manifest["r"]["workers"] = workers
    (target / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return target


def infer_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris-randomforest")
    request.inputs.add(name="measurements", datatype="FP64", shape=[1, 4])
    request.raw_input_contents.append(np.array([ROW], dtype=np.float64).tobytes())
    return request


async def measure_http(label: str, port: int, body: bytes, concurrency: int, seconds: float,
                       warmup_s: float = 1.0) -> Result:
    """The same closed loop as load.measure, over HTTP/1.1 with a new connection per request.

    That is plumber's best case here: on keep-alive connections its split header/body writes
    meet the client's delayed ACKs (about 40 ms a request, or ~10 ms with TCP_QUICKACK set
    around every read), while a fresh connection costs well under a millisecond on loopback."""
    request = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    async def call() -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer.write(request)
        response = await reader.read()  # until the server closes
        writer.close()
        return b" 200 " in response.split(b"\r\n", 1)[0] and b"species" in response

    return await closed_loop(label, call, concurrency, seconds, warmup_s)


async def measure_target(label: str, port: int, http: bool, concurrency: int, seconds: float,
                         warmup_s: float) -> Result:
    if http:
        body = json.dumps({"rows": [dict(zip(FEATURES, ROW))]}).encode()
        return await measure_http(label, port, body, concurrency, seconds, warmup_s)
    return await measure(label, f"127.0.0.1:{port}", infer_request(), concurrency, seconds, warmup_s=warmup_s)


async def run_targets(targets: dict[str, tuple[int, bool]], seconds: float, rounds: int) -> list[Result]:
    """TARGETS: label -> (port, spoken over HTTP). Warm each, then measure in rotating slices."""
    for label, (port, http) in targets.items():
        await measure_target(label, port, http, 8, 1.0, warmup_s=0)
    merged: dict[tuple[str, int], Result] = {}
    for round_number in range(rounds):
        order = list(targets)
        order = order[round_number % len(order):] + order[:round_number % len(order)]
        for concurrency in CONCURRENCY:
            for label in order:
                port, http = targets[label]
                part = await measure_target(label, port, http, concurrency, seconds / rounds, warmup_s=0)
                merged[(label, concurrency)] = merge_results(merged.get((label, concurrency)), part)
                print(f"  round {round_number + 1}/{rounds}: {label}, concurrency {concurrency}: "
                      f"{part.throughput:.0f} req/s", flush=True)
    return [merged[(label, c)] for label in targets for c in CONCURRENCY]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per point, over all rounds")
    parser.add_argument("--rounds", type=int, default=3, help="slices each point is measured in")
    parser.add_argument("--only", default="plumber,adapter,batching,workers,workers+batching,mesh,mesh+workers",
                        help="targets to run (comma-separated)")
    args = parser.parse_args()
    if not (IRIS / "model.rds").exists():
        raise SystemExit("examples/r_iris_randomforest/model.rds is missing: run scripts/setup.sh")
    only = set(args.only.split(","))
    py = [sys.executable, "-m", "meshserve.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        def adapter(name: str, batch: int, workers: int):
            return lambda port: [*py, "adapter", str(package_copy(folder, name, batch, workers)),
                                 "--listen", f"127.0.0.1:{port}"]

        targets = [
            ("plumber", BASELINE, lambda port: ["Rscript", "--vanilla", "bench/plumber_iris.R", str(IRIS), str(port)],
             "plumber ready"),
            ("adapter", "adapter, no batching", adapter("plain", 1, 0), "meshserve adapter ready"),
            ("batching", "adapter, batching", adapter("batched", 64, 0), "meshserve adapter ready"),
            ("workers", "adapter, 2 workers", adapter("workers", 1, 2), "meshserve adapter ready"),
            ("workers+batching", "adapter, 2 workers, batching", adapter("both", 64, 2), "meshserve adapter ready"),
            ("mesh", "meshserve up, batching",
             lambda port: [*py, "up", str(package_copy(folder / "mesh", "iris", 64, 0).parent), "--listen",
                           f"127.0.0.1:{port}"],
             "clients connect to"),
            ("mesh+workers", "meshserve up, 2 workers, batching",
             lambda port: [*py, "up", str(package_copy(folder / "mesh-workers", "iris", 64, 2).parent), "--listen",
                           f"127.0.0.1:{port}"],
             "clients connect to"),
        ]
        running: dict[str, tuple[int, bool]] = {}
        processes = []
        try:
            for key, label, argv, ready in targets:
                if key in only:
                    port = free_port()
                    processes.append(start(argv(port), ready, port))
                    running[label] = (port, key == "plumber")
            results = asyncio.run(run_targets(running, args.seconds, args.rounds))
        finally:
            for proc in processes:
                stop(proc)
    print()
    print(f"iris randomForest, one row per request, {args.seconds:g} s per point in {args.rounds} slices; "
          f"ratios against {BASELINE}")
    print("(median x < 1: faster than plumber; req/s x > 1: more throughput)")
    print(table(results, BASELINE) if any(r.label == BASELINE for r in results) else table(results, results[0].label))


if __name__ == "__main__":
    main()
