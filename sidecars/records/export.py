"""Records as a table: one row per (request, row of its batch), one typed column per feature.

Parquet (read as is by pandas, DuckDB, Spark), CSV or JSON lines. A tensor with feature names
becomes one column per feature; a 1-D or [-1, 1] tensor one column named after it (the names
drift baselines use); other shapes one column per position (`probabilities_0`, ...). Inputs
marked pii hold their HMAC digests; a tensor too large to record is null.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ARROW_TYPES = {
    "BOOL": pa.bool_(), "UINT8": pa.uint8(), "UINT16": pa.uint16(), "UINT32": pa.uint32(), "UINT64": pa.uint64(),
    "INT8": pa.int8(), "INT16": pa.int16(), "INT32": pa.int32(), "INT64": pa.int64(),
    "FP16": pa.float32(), "FP32": pa.float32(), "FP64": pa.float64(), "BYTES": pa.string(),
}
META = [("request_id", pa.string()), ("slot", pa.string()), ("row", pa.int32()), ("time", pa.timestamp("us", "UTC")),
        ("model", pa.string()), ("version", pa.string()), ("role", pa.string()), ("side", pa.string()),
        ("code", pa.string()), ("error", pa.string()), ("latency_s", pa.float64()), ("digest", pa.string()),
        ("trace_id", pa.string())]
FORMATS = ("parquet", "csv", "jsonl")


def _columns_of(name: str, tensor: dict[str, Any], rows: int) -> Iterator[tuple[str, pa.DataType, list]]:
    """(column, type, one value per row) for one recorded tensor."""
    kind = pa.string() if tensor.get("pii") else ARROW_TYPES.get(tensor.get("datatype"), pa.string())
    shape = tensor.get("shape") or []
    values = tensor.get("values")
    if values is not None and not shape:
        values = [values]
    width = shape[1] if len(shape) == 2 else None
    features = tensor.get("features") if width is not None else None
    if len(shape) <= 1:
        yield name, kind, list(values) if values is not None else [None] * rows
    elif len(shape) == 2:
        labels = features or ([name] if width == 1 else [f"{name}_{j}" for j in range(width)])
        for j, label in enumerate(labels):
            yield label, kind, [row[j] for row in values] if values is not None else [None] * rows
    else:
        yield name, pa.string(), [json.dumps(v) for v in values] if values is not None else [None] * rows


def rows_of(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, tuple[pa.DataType, Any]]]:
    for record in records:
        tensors = [("input", record.get("inputs") or {}), ("output", record.get("outputs") or {})]
        rows = max([t["shape"][0] for _, group in tensors for t in group.values() if t.get("shape")] or [1])
        columns: dict[str, tuple[pa.DataType, list]] = {}
        for kind, group in tensors:
            for name, tensor in group.items():
                for column, arrow_type, values in _columns_of(name, tensor, rows):
                    key = column if column not in columns and column not in dict(META) else f"{kind}.{column}"
                    columns[key] = (arrow_type, values)
        for i in range(rows):
            row = {name: (kind, record.get(name) if name not in ("row", "time") else None) for name, kind in META}
            row["row"] = (pa.int32(), i)
            row["time"] = (pa.timestamp("us", "UTC"), int(record["time"] * 1_000_000))
            for column, (arrow_type, values) in columns.items():
                row[column] = (arrow_type, values[i] if i < len(values) else None)
            yield row


def _table(rows: list[dict[str, tuple[pa.DataType, Any]]], schema: pa.Schema | None) -> pa.Table:
    if schema is None:
        fields: dict[str, pa.DataType] = {}
        for row in rows:
            for name, (kind, _) in row.items():
                fields.setdefault(name, kind)
        schema = pa.schema(list(fields.items()))
    data = {f.name: [row[f.name][1] if f.name in row else None for row in rows] for f in schema}
    arrays = []
    for f in schema:
        values = data[f.name]
        if pa.types.is_string(f.type):
            values = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
        elif pa.types.is_floating(f.type):
            values = [float(v) if isinstance(v, str) else v for v in values]  # "nan", "inf" as recorded
        arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _pandas_types(schema: pa.Schema) -> pa.Schema:
    """SCHEMA with pandas metadata naming nullable dtypes for integer and boolean columns: a refused
    request has no outputs, and pandas reads an integer column with a null in it as float64."""
    try:
        import pandas as pd
    except ImportError:
        return schema
    dtypes = {}
    for f in schema:
        if pa.types.is_integer(f.type):
            dtypes[f.name] = f"{'UInt' if pa.types.is_unsigned_integer(f.type) else 'Int'}{f.type.bit_width}"
        elif pa.types.is_boolean(f.type):
            dtypes[f.name] = "boolean"
        else:
            dtypes[f.name] = object if pa.types.is_string(f.type) else f.type.to_pandas_dtype()
    empty = pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in dtypes.items()})
    return schema.with_metadata(pa.Table.from_pandas(empty, schema=schema, preserve_index=False).schema.metadata)


def _csv_floats(table: pa.Table) -> pa.Table:
    """Floating columns as their shortest exact text, always with a decimal point: the CSV writer
    prints 1.0 as `1`, which every reader then takes for an integer column."""
    for i, f in enumerate(table.schema):
        if pa.types.is_floating(f.type):
            text = [None if v is None else repr(float(v)) for v in table.column(i).to_pylist()]
            table = table.set_column(i, pa.field(f.name, pa.string()), pa.array(text, pa.string()))
    return table


def export(records: Iterable[dict[str, Any]], path: str | Path, fmt: str, progress=None, chunk: int = 5000) -> int:
    """Write RECORDS to PATH in FMT; returns the number of rows written."""
    if fmt not in FORMATS:
        raise ValueError(f"format '{fmt}': use one of {', '.join(FORMATS)}")
    path = Path(path)
    written, schema, writer, pending = 0, None, None, []

    def counted(items):
        for record in items:
            if progress is not None:
                progress.advance()
            yield record

    def flush() -> None:
        nonlocal written, schema, writer
        if not pending:
            return
        table = _table(pending, schema)
        schema = table.schema
        if fmt == "parquet":
            writer = writer or pq.ParquetWriter(path, _pandas_types(schema))
            writer.write_table(table.replace_schema_metadata(writer.schema.metadata))
        elif fmt == "csv":
            text = _csv_floats(table)
            writer = writer or pacsv.CSVWriter(path, text.schema)
            writer.write_table(text)
        else:
            writer = writer or open(path, "w")
            for row in table.to_pylist():
                if row.get("time") is not None:
                    row["time"] = row["time"].isoformat()
                writer.write(json.dumps(row) + "\n")
        written += len(pending)
        pending.clear()

    try:
        for row in rows_of(counted(records)):
            pending.append(row)
            if len(pending) >= chunk:
                flush()
        flush()
        if writer is None:  # nothing matched: still leave a valid, empty file
            table = _table([], pa.schema(META))
            if fmt == "parquet":
                pq.write_table(table, path)
            elif fmt == "csv":
                pacsv.write_csv(table, path)
            else:
                path.write_text("")
    finally:
        if writer is not None:
            writer.close()
    return written
