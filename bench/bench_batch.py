"""Batch throughput: rows per second of `meshserve batch` over 100,000 breast-cancer rows through the
whole mesh (Envoy, router, adapter, records on), against the same estimator scoring the same rows
in-process in a loop of the same chunk size, in one run.

    .venv/bin/python bench/bench_batch.py [--rows 100000] [--chunk-rows 1000]
"""

from __future__ import annotations

import argparse
import csv
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk-rows", type=int, default=1000)
    args = parser.parse_args()
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
    started = time.perf_counter()
    for start in range(0, args.rows, args.chunk_rows):
        chunk = values[start:start + args.chunk_rows]
        model.predict(chunk)
        model.predict_proba(chunk)
    in_process = args.rows / (time.perf_counter() - started)
    models = folder / "models"
    models.mkdir()
    (models / "breast_cancer").symlink_to(ROOT / "examples" / "breast_cancer", target_is_directory=True)
    mesh = start_mesh(models)
    try:
        started = time.perf_counter()
        subprocess.run(meshserve_argv("batch", "breast-cancer", str(source), "-o", str(folder / "out.parquet"),
                                      "--address", mesh.address, "--chunk-rows", str(args.chunk_rows)),
                       check=True, capture_output=True)
        through_mesh = args.rows / (time.perf_counter() - started)
    finally:
        mesh.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"breast-cancer, {args.rows:,} rows in chunks of {args.chunk_rows}")
    print(f"{'target':<40}{'rows/s':>12}{'ratio':>8}")
    print(f"{'in-process estimator loop (baseline)':<40}{in_process:>12,.0f}{1.0:>8.2f}")
    print(f"{'meshserve batch through the mesh':<40}{through_mesh:>12,.0f}{through_mesh / in_process:>8.2f}")


if __name__ == "__main__":
    main()
