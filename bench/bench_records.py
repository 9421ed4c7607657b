"""Cost of prediction records: breast-cancer through the whole mesh (Envoy, router, adapter) at
concurrency 16 with records off, on into SQLite and on into PostgreSQL, in one run, plus the cost
per record (CPU microseconds of the adapter, the router and the recorder; bytes in the store).

    .venv/bin/python bench/bench_records.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from tritonclient.grpc import service_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from conftest import start_mesh  # noqa: E402
from load import measure, table  # noqa: E402
from postgres_server import PostgresServer, postgres_bin  # noqa: E402

from meshserve.sidecars.records.store import open_store  # noqa: E402


def one_row_request() -> pb.ModelInferRequest:
    row = load_breast_cancer().data[:1]
    request = pb.ModelInferRequest(model_name="breast-cancer", raw_input_contents=[np.ascontiguousarray(row).tobytes()])
    request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    return request


def cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError):
            pass
    return total


def children(mesh, pattern: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == mesh.proc.pid and pattern in cmdline:
                found.append(int(entry.name))
    return found


async def run(seconds: float) -> None:
    request = one_row_request()
    postgres = PostgresServer().start() if postgres_bin() else None
    targets = [("records off", "records: {enabled: false}\n"), ("records -> SQLite", "")]
    if postgres is not None:
        targets.append(("records -> PostgreSQL", f"records: {{store: '{postgres.url}'}}\n"))
    results, costs = [], []
    try:
        for label, spec in targets:
            folder = Path(tempfile.mkdtemp(prefix="bench-records-"))
            (folder / "breast_cancer").symlink_to(ROOT / "examples" / "breast_cancer", target_is_directory=True)
            (folder / "meshserve.yaml").write_text(spec)
            mesh = start_mesh(folder)
            try:
                watched = {name: children(mesh, pattern) for name, pattern in (
                    ("adapter", "meshserve.adapters.server"), ("router", "meshserve.router.server"),
                    ("recorder", "meshserve.sidecars.records.recorder"))}
                before = {name: cpu_seconds(pids) for name, pids in watched.items()}
                print(f"measuring {label} at concurrency 16 for {seconds:.0f} s ...", flush=True)
                result = await measure(label, mesh.address, request, 16, seconds)
                results.append(result)
                time.sleep(2.0)  # let the recorder catch up before its CPU is read
                used = {name: cpu_seconds(watched[name]) - before[name] for name in watched}
                stored_bytes = 0
                if label != "records off":
                    store = open_store(postgres.url if "PostgreSQL" in label else str(folder))
                    count = max(store.count("breast-cancer"), 1)
                    stored_bytes = store.size_bytes() / count
                    store.close()
                total = result.requests + result.errors
                costs.append((label, {k: 1e6 * v / max(total, 1) for k, v in used.items()}, stored_bytes))
            finally:
                mesh.stop()
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if postgres is not None:
            postgres.stop()
    print()
    print("breast-cancer through the whole mesh, one row per request (ratios against records off)")
    print(table(results, "records off"))
    print()
    print(f"{'target':<28}{'adapter us/req':>15}{'router us/req':>14}{'recorder us/req':>16}{'store bytes/rec':>16}")
    for label, cpu, stored in costs:
        print(f"{label:<28}{cpu['adapter']:>15.0f}{cpu['router']:>14.0f}{cpu['recorder']:>16.0f}{stored:>16.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per target")
    asyncio.run(run(parser.parse_args().seconds))


if __name__ == "__main__":
    main()
