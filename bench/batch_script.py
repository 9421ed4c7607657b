"""The batch job a team writes without a server, the baseline of bench_batch.py: read the CSV,
score it in chunks with the estimator, write Parquet. Run as a process of its own it also pays
what such a script pays to start (its imports, loading the model):

    .venv/bin/python bench/batch_script.py ROWS.csv OUT.parquet CHUNK_ROWS
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

MODEL = Path(__file__).resolve().parents[1] / "examples" / "breast_cancer" / "model.joblib"


def score_file(model, source: Path, output: Path, features: list[str] | None, chunk_rows: int) -> None:
    """What a team's own script does: the same file in, the same columns out, no server. FEATURES:
    the columns the model takes, in its order; None: all of the file's."""
    table = pacsv.read_csv(source)
    features = features or table.column_names
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


if __name__ == "__main__":
    source, output, chunk_rows = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    score_file(joblib.load(MODEL), source, output, None, chunk_rows)
