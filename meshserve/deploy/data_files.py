"""Tables in CSV, Parquet or JSON-lines files (read with pyarrow), and their fingerprint."""

from __future__ import annotations

from pathlib import Path

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import sha256_of

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "json", ".ndjson": "json"}


def read_table(path: Path, option: str):
    """The file as a pyarrow Table; OPTION names the flag that gave it, for the error."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ManifestError(str(path), option, f"'{path.suffix}' is not a table format meshserve reads",
                            "give a .csv, .parquet or .jsonl file")
    if not path.is_file():
        raise ManifestError(str(path), option, "no such file", "give the path of an existing file")
    try:
        if kind == "csv":
            from pyarrow import csv

            return csv.read_csv(path)
        if kind == "parquet":
            from pyarrow import parquet

            return parquet.read_table(path)
        from pyarrow import json

        return json.read_json(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends with the reason
        raise ManifestError(str(path), option, f"cannot be read as {kind}: {exc}",
                            f"check that the file is valid {kind}") from exc


def fingerprint(path: Path) -> dict:
    """sha256 and row count of a training-data file."""
    return {"sha256": sha256_of(path), "rows": read_table(path, "--training-data").num_rows}
