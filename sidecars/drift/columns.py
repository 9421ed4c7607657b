"""How a tensor of a signature becomes named columns: the same names `meshserve records export` writes.

A tensor with `features:` gives one column per feature; a 1-D tensor one column named after it;
a [-1, k] tensor without feature names `NAME_0` ... `NAME_{k-1}`. Larger shapes are not monitored
(an image's pixels are no features a person could act on).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Integer tensors with at most this many distinct values in the training data are categories
# (class labels, codes); with more they are treated as numbers.
MAX_INTEGER_CATEGORIES = 20
CATEGORICAL_TYPES = {"BYTES", "BOOL"}
INTEGER_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def columns_of(spec: Any) -> list[str] | None:
    """Column names of one TensorSpec, or None when its shape is not monitored."""
    shape = list(spec.shape)
    if len(shape) == 1:
        return [spec.name]
    if len(shape) == 2:
        if spec.features:
            return list(spec.features)
        if shape[1] > 0:
            return [f"{spec.name}_{j}" for j in range(shape[1])]
    return None


def signature_columns(signature: Any) -> Iterator[tuple[str, Any, str, int | None]]:
    """(role 'input' or 'output', spec, column, position along the last axis or None) for each column."""
    for role, specs in (("input", signature.inputs), ("output", signature.outputs)):
        for spec in specs:
            names = columns_of(spec)
            if names is None or spec.pii:  # pii values are keyed hashes: no distribution to compare
                continue
            for j, column in enumerate(names):
                yield role, spec, column, (j if len(spec.shape) == 2 else None)


def recorded_column(tensor: dict[str, Any], position: int | None) -> list | None:
    """One column's values (one per row) of a recorded tensor, or None when its values were not kept."""
    values = tensor.get("values")
    if values is None:
        return None
    shape = tensor.get("shape") or []
    if position is None:
        return list(values) if len(shape) == 1 else None
    if len(shape) != 2:
        return None
    return [row[position] if position < len(row) else None for row in values]
