"""Batch throughput: rows per second of `meshserve batch` over 100,000 breast-cancer rows through the
whole mesh (Envoy, router, adapter, records on), against the same job done in-process (read the
CSV, score chunks of the same size with the estimator, write Parquet), in one run; also shown:
the estimator alone on arrays in memory, and a loop of one-row calls (measured on 2,000 rows).

    .venv/bin/python bench/bench_batch.py [--rows 100000] [--chunk-rows 1000]
"""

from __future__ import annotations

import argparse
import csv
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sklearn.datasets import load_breast_cancer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import meshserve_argv, start_mesh  # noqa: E402
from process_cpu import PartsCpu  # noqa: E402

from meshserve.batch.job import chunk_rows_for  # noqa: E402
from meshserve.core.model_package import load_package  # noqa: E402


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def score_arrays(model, values: np.ndarray, chunk_rows: int) -> None:
    for start in range(0, len(values), chunk_rows):
        chunk = values[start:start + chunk_rows]
        model.predict(chunk)
        model.predict_proba(chunk)


def score_file(model, source: Path, output: Path, features: list[str], chunk_rows: int) -> None:
    """What a team's own script does: the same file in, the same columns out, no server."""
    table = pacsv.read_csv(source)
    writer = None
    for start in range(0, table.num_rows, chunk_rows):
        chunk = table.slice(start, chunk_rows)
        rows = np.column_stack([chunk.column(f).to_numpy() for f in features])
        probabilities = model.predict_proba(rows)
        scored = chunk.append_column("label", pa.array(model.predict(rows)))
        for j in range(probabilities.shape[1]):
            scored = scored.append_column(f"probability_{j}", pa.array(probabilities[:, j]))
        writer = writer or pq.ParquetWriter(output, scored.schema)
        writer.write_table(scored)
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk-rows", type=int, default=0, help="0: what `meshserve batch` picks")
    args = parser.parse_args()
    package = load_package(ROOT / "examples" / "breast_cancer")
    args.chunk_rows = args.chunk_rows or chunk_rows_for(package.manifest.signature.inputs)
    data = load_breast_cancer()
    rng = np.random.default_rng(0)
    values = data.data[rng.integers(0, len(data.data), args.rows)]
    folder = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    source = folder / "rows.csv"
    with open(source, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(data.feature_names)
        writer.writerows(values.tolist())
    model = joblib.load(ROOT / "examples" / "breast_cancer" / "model.joblib")
    estimator_only = args.rows / timed(lambda: score_arrays(model, values, args.chunk_rows))
    in_process_job = args.rows / timed(lambda: score_file(model, source, folder / "in-process.parquet",
                                                          list(data.feature_names), args.chunk_rows))
    sample = values[:min(args.rows, 2000)]
    row_loop = len(sample) / timed(lambda: [(model.predict(row[None]), model.predict_proba(row[None])) for row in sample])
    models = folder / "models"
    models.mkdir()
    (models / "breast_cancer").symlink_to(ROOT / "examples" / "breast_cancer", target_is_directory=True)
    mesh = start_mesh(models)
    try:
        cpu = PartsCpu(mesh.proc.pid)
        cpu.mark()
        started = time.perf_counter()
        job = subprocess.Popen(meshserve_argv("batch", "breast-cancer", str(source), "-o", str(folder / "out.parquet"),
                                              "--address", mesh.address, "--chunk-rows", str(args.chunk_rows)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        _, errors = job.communicate()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if job.returncode:
            raise SystemExit(errors.decode())
        through_mesh = args.rows / (time.perf_counter() - started)
        used = cpu.used()
    finally:
        mesh.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"breast-cancer, {args.rows:,} rows in chunks of {args.chunk_rows}")
    print(f"{'target':<58}{'rows/s':>12}{'ratio':>8}")
    print(f"{'in-process job: read the CSV, score chunks, write Parquet':<58}{in_process_job:>12,.0f}{1.0:>8.2f}")
    for label, rate in (("in-process estimator calls on arrays in memory", estimator_only),
                        ("in-process loop of one-row calls", row_loop),
                        ("meshserve batch through the mesh (records on)", through_mesh)):
        print(f"{label:<58}{rate:>12,.0f}{rate / in_process_job:>8.2f}")
    print("CPU microseconds per row: " + ", ".join(
        f"{part} {seconds / args.rows * 1e6:.1f}" for part, seconds in sorted({**used, "batch client": client_s}.items())))


if __name__ == "__main__":
    main()
