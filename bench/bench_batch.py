"""Batch throughput: rows per second of `meshserve batch` over 100,000 breast-cancer rows through the
whole mesh (Envoy, router, adapter, records on), against the same job done in-process (read the
CSV, score chunks of the same size with the estimator, write Parquet), in one run; also shown:
the estimator alone on arrays in memory, and a loop of one-row calls (measured on 2,000 rows).

Each side is measured twice, since a command's start (importing its libraries, loading or asking
for the model) is a fixed cost a 100,000-row job feels: with its start (the in-process job as a
fresh `python` process, as a team's cron script runs; `meshserve batch` as it runs), and net of
it (the in-process job in this warm process; `meshserve batch`'s time less a 10-row job's).

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
from sklearn.datasets import load_breast_cancer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import meshserve_argv, start_mesh  # noqa: E402
from batch_script import score_file  # noqa: E402
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


def fresh_job(source: Path, output: Path, chunk_rows: int) -> float:
    """Seconds the in-process job takes as a process of its own, imports and model load included."""
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "bench" / "batch_script.py"), str(source), str(output), str(chunk_rows)],
                   check=True)
    return time.perf_counter() - started


def mesh_job(mesh, source: Path, output: Path, chunk_rows: int) -> tuple[float, float]:
    """(seconds, CPU seconds of the batch client) of one `meshserve batch` run."""
    started = time.perf_counter()
    job = subprocess.Popen(meshserve_argv("batch", "breast-cancer", str(source), "-o", str(output),
                                          "--address", mesh.address, "--chunk-rows", str(chunk_rows)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    _, errors = job.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if job.returncode:
        raise SystemExit(errors.decode())
    return time.perf_counter() - started, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def write_rows(path: Path, names, values: np.ndarray) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        writer.writerows(values.tolist())


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
    source, few = folder / "rows.csv", folder / "few.csv"
    write_rows(source, data.feature_names, values)
    write_rows(few, data.feature_names, values[:10])
    model = joblib.load(ROOT / "examples" / "breast_cancer" / "model.joblib")
    estimator_only = args.rows / timed(lambda: score_arrays(model, values, args.chunk_rows))
    in_process_job = args.rows / timed(lambda: score_file(model, source, folder / "in-process.parquet",
                                                          list(data.feature_names), args.chunk_rows))
    sample = values[:min(args.rows, 2000)]
    row_loop = len(sample) / timed(lambda: [(model.predict(row[None]), model.predict_proba(row[None])) for row in sample])
    fresh = args.rows / fresh_job(source, folder / "fresh.parquet", args.chunk_rows)
    models = folder / "models"
    models.mkdir()
    (models / "breast_cancer").symlink_to(ROOT / "examples" / "breast_cancer", target_is_directory=True)
    mesh = start_mesh(models)
    try:
        start_s, _ = mesh_job(mesh, few, folder / "few.parquet", args.chunk_rows)
        cpu = PartsCpu(mesh.proc.pid)
        cpu.mark()
        mesh_s, client_s = mesh_job(mesh, source, folder / "out.parquet", args.chunk_rows)
        used = cpu.used()
    finally:
        mesh.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"breast-cancer, {args.rows:,} rows in chunks of {args.chunk_rows}")
    print(f"{'target':<64}{'rows/s':>12}{'ratio':>8}")
    print(f"{'in-process job, warm: read the CSV, score chunks, write Parquet':<64}{in_process_job:>12,.0f}{1.0:>8.2f}")
    for label, rate in (("in-process estimator calls on arrays in memory", estimator_only),
                        ("in-process loop of one-row calls", row_loop),
                        (f"meshserve batch net of its start ({start_s:.2f} s, a 10-row job)", args.rows / (mesh_s - start_s))):
        print(f"{label:<64}{rate:>12,.0f}{rate / in_process_job:>8.2f}")
    print(f"{'in-process job as a fresh process (imports, model load)':<64}{fresh:>12,.0f}{1.0:>8.2f}")
    print(f"{'meshserve batch through the mesh (records on)':<64}{args.rows / mesh_s:>12,.0f}{args.rows / mesh_s / fresh:>8.2f}")
    print("CPU microseconds per row: " + ", ".join(
        f"{part} {seconds / args.rows * 1e6:.1f}" for part, seconds in sorted({**used, "batch client": client_s}.items())))


if __name__ == "__main__":
    main()
