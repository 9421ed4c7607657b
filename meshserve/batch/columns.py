"""How the columns of an input file become a model's input tensors, and its outputs become columns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from meshserve.core.datatypes import NUMPY_DTYPES


class ColumnsMismatch(ValueError):
    """The file lacks columns the model needs; the message names them."""


@dataclass(frozen=True)
class InputPlan:
    name: str
    datatype: str
    columns: list[str]  # one per feature along the last axis, or the one column of a 1-D input
    two_dimensional: bool

    def tensor(self, table: pa.Table) -> np.ndarray:
        dtype = NUMPY_DTYPES[self.datatype]
        if self.datatype == "BYTES":
            arrays = [np.array([(v if v is not None else "").encode() if not isinstance(v, bytes) else v
                                for v in table.column(c).to_pylist()], dtype=object) for c in self.columns]
            if not self.two_dimensional:
                return arrays[0]
            return np.stack(arrays, axis=1) if arrays else np.zeros((table.num_rows, 0), dtype=object)
        if not self.two_dimensional:
            return table.column(self.columns[0]).to_numpy(zero_copy_only=False).astype(dtype, copy=False)
        tensor = np.empty((table.num_rows, len(self.columns)), dtype=dtype)  # filled in place: one copy per column
        for j, column in enumerate(self.columns):
            tensor[:, j] = table.column(column).to_numpy(zero_copy_only=False)
        return tensor


def plan_inputs(model_inputs, available: list[str]) -> list[InputPlan]:
    """Match the model's inputs (control-API TensorSpecs) to the file's columns by feature name."""
    plans, missing = [], []
    for spec in model_inputs:
        shape = list(spec.shape)
        if spec.features:
            columns = list(spec.features)
            two_dimensional = True
        elif len(shape) == 1:
            columns, two_dimensional = [spec.name], False
        elif len(shape) == 2 and shape[1] == 1:
            columns, two_dimensional = [spec.name], True
        else:
            raise ColumnsMismatch(f"input '{spec.name}' has shape {shape} and no feature names, so no column can be "
                                  "matched to it; name its columns with `features:` in model.yaml")
        missing += [c for c in columns if c not in available]
        plans.append(InputPlan(spec.name, spec.datatype, columns, two_dimensional))
    if missing:
        shown = ", ".join(repr(c) for c in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ColumnsMismatch(f"the input file has no column {shown}; the model's inputs need a column per feature "
                              f"(the file has: {', '.join(available[:20])}{' ...' if len(available) > 20 else ''})")
    return plans


def output_columns(name: str, array: np.ndarray, features: list[str]) -> dict[str, pa.Array]:
    """An output tensor as columns: one per feature along the last axis of a 2-D output."""
    array = np.asarray(array)
    if array.ndim <= 1:
        return {name: _column(array.reshape(-1))}
    if array.ndim == 2:
        labels = features if len(features) == array.shape[1] else [f"{name}_{j}" for j in range(array.shape[1])]
        return {label: _column(array[:, j]) for j, label in enumerate(labels)}
    return {name: pa.array([str(row) for row in array.tolist()])}


def _column(values: np.ndarray) -> pa.Array:
    if values.dtype == object:  # BYTES: text where it decodes
        return pa.array([v.decode(errors="replace") if isinstance(v, bytes) else v for v in values.tolist()])
    if values.dtype == np.float16:  # half floats: not every output format takes them
        values = values.astype(np.float32)
    return pa.array(values)
