"""Training data and golden examples as tables, and a training-data file's fingerprint.

The files are read by `meshserve.core.tabular_files`, so they take the endings every table
file takes (CSV, TSV, Parquet, JSON lines, gzipped text).
"""

from __future__ import annotations

from pathlib import Path

from meshserve.core import tabular_files
from meshserve.core.model_package import sha256_of


def read_table(path: Path, option: str):
    """The file as a pyarrow Table; OPTION names the flag that gave it, for the error."""
    return tabular_files.read_table(path, field=option)


def fingerprint(path: Path) -> dict:
    """sha256 and row count of a training-data file."""
    return {"sha256": sha256_of(path), "rows": read_table(path, "--training-data").num_rows}
