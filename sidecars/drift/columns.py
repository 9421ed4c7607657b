"""How a tensor of a signature becomes named columns: the same names `meshserve records export` writes.

A tensor with `features:` gives one column per feature; a 1-D or [-1, 1] tensor one column named
after it (the name its `limits` use); a [-1, k] tensor without feature names `NAME_0` ...
`NAME_{k-1}`. Larger shapes are not monitored (an image's pixels are no features a person could act on).
"""

from __future__ import annotations

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
        if shape[1] == 1:
            return [spec.name]
        if shape[1] > 0:
            return [f"{spec.name}_{j}" for j in range(shape[1])]
    return None


def former_names(spec: Any) -> list[str]:
    """Names older baselines gave a column that now has another: `NAME_0` of a [-1, 1] tensor."""
    shape = list(spec.shape)
    return [f"{spec.name}_0"] if len(shape) == 2 and shape[1] == 1 and not spec.features else []
