"""Recorded outputs as the values a comparison may set side by side: one label per row for a class
output, one series per column for a numeric one.

An output of shape [-1, k] holds k different quantities (for class probabilities, one per
class). Pooled, the two columns of a binary classifier's probabilities always have the median
0.5 and the same set of values, whatever the model says, so no comparison ever pools columns.
Columns take the output's feature names from the signature (kept in each record); without
them they are named by position as `meshserve records export` names them (`probabilities_0`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

CLASS_TYPES = {"BYTES", "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def rows_of(tensor: dict[str, Any] | None) -> list | None:
    if tensor is None or "values" not in tensor:
        return None
    values = tensor["values"]
    return values if isinstance(values, list) else [values]


def is_class(tensor: dict[str, Any]) -> bool:
    return tensor.get("datatype") in CLASS_TYPES


def labels_of(tensor: dict[str, Any] | None) -> list[str] | None:
    """One label per row; a row of one value is that value."""
    rows = rows_of(tensor)
    if rows is None:
        return None
    return [str(v[0] if isinstance(v, list) and len(v) == 1 else v) for v in rows]


def column_names(name: str, tensor: dict[str, Any], width: int) -> list[str]:
    if width == 1:
        return [name]
    features = tensor.get("features")
    if isinstance(features, list) and len(features) == width:
        return [str(f) for f in features]
    return [f"{name}_{j}" for j in range(width)]


def columns_of(name: str, tensor: dict[str, Any] | None) -> dict[str, np.ndarray] | None:
    """Column name -> one value per row; None for a tensor whose values were not kept or are not numbers."""
    rows = rows_of(tensor)
    if rows is None:
        return None
    try:
        values = np.asarray(rows, dtype=float)
    except (TypeError, ValueError):
        return None
    if values.ndim == 0 or not len(values):
        return None
    values = values.reshape(len(values), -1)
    return {column: values[:, j] for j, column in enumerate(column_names(name, tensor, values.shape[1]))}


def gather_columns(records: list[dict], name: str) -> dict[str, np.ndarray]:
    """Every column of output NAME over RECORDS, rows in record order; a record whose output has another
    width than the first one's is left out rather than misaligned."""
    gathered: dict[str, list[np.ndarray]] = {}
    for record in records:
        columns = columns_of(name, (record.get("outputs") or {}).get(name))
        if columns is None or (gathered and list(columns) != list(gathered)):
            continue
        for column, values in columns.items():
            gathered.setdefault(column, []).append(values)
    return {column: np.concatenate(parts) for column, parts in gathered.items()}


def label(output: str, column: str) -> str:
    """How a person reads a column: `probabilities[benign]`, or the output's name for a one-column output."""
    if column == output or column.startswith(f"{output}_"):  # one column, or one named by position already
        return column
    return f"{output}[{column}]"
