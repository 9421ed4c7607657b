"""R's result columns -> the model's declared V2 outputs.

Which result columns feed an output: the mapping under `r.outputs`, else the output's
`features`, else a column named like the output, else a result that is a single vector,
else (for a model with one output) every column in order.
"""

from __future__ import annotations

import numpy as np

from meshserve.core.errors import ModelFailed
from meshserve.core.model_package import TensorSpec

NUMPY_DTYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}


class OutputPlan:
    def __init__(self, outputs: list[TensorSpec], mapping: dict[str, str | list[str]]):
        self.outputs = outputs
        self.mapping = {k: ([v] if isinstance(v, str) else list(v)) for k, v in mapping.items()}

    def empty(self) -> dict[str, np.ndarray]:
        """Outputs for a request with no rows (R is not called)."""
        return {
            spec.name: np.empty((0, *(len(self.mapping.get(spec.name, spec.features or [])) if d == -1 else d
                                      for d in spec.shape[1:])), dtype=NUMPY_DTYPES[spec.datatype])
            for spec in self.outputs
        }

    def to_tensors(self, columns: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        return {spec.name: self._one(spec, columns, rows) for spec in self.outputs}

    def _one(self, spec: TensorSpec, columns: dict[str, np.ndarray], rows: int) -> np.ndarray:
        names = self._column_names(spec, columns)
        missing = [n for n in names if n not in columns]
        if missing:
            raise ModelFailed(f"R result has no column {', '.join(repr(m) for m in missing)} for output "
                              f"'{spec.name}'; it has {_listing(columns)}")
        values = []
        for name in names:
            column = columns[name]
            if column.shape[0] != rows:
                raise ModelFailed(f"R returned {column.shape[0]} values in column '{name}' for {rows} rows")
            values.append(_as_datatype(column, spec, name))
        if len(spec.shape) == 1:
            if len(values) != 1:
                raise ModelFailed(f"output '{spec.name}' is one column but maps to {len(values)}: {', '.join(names)}")
            return values[0]
        stacked = np.stack(values, axis=1) if values else np.empty((rows, 0))
        if len(spec.shape) == 2:
            if spec.shape[1] not in (-1, stacked.shape[1]):
                raise ModelFailed(f"output '{spec.name}' has {spec.shape[1]} columns but R returned "
                                  f"{stacked.shape[1]} ({', '.join(names)})")
            return stacked
        return stacked.reshape((rows, *[d for d in spec.shape[1:]]))

    def _column_names(self, spec: TensorSpec, columns: dict[str, np.ndarray]) -> list[str]:
        if spec.name in self.mapping:
            return self.mapping[spec.name]
        if spec.features:
            return list(spec.features)
        if spec.name in columns:
            return [spec.name]
        if len(columns) == 1:
            return list(columns)
        if len(self.outputs) == 1:
            return list(columns)
        raise ModelFailed(f"R result has {_listing(columns)}; none is named '{spec.name}'. "
                          f"Map it under r.outputs in model.yaml")


def _listing(columns: dict[str, np.ndarray]) -> str:
    return "columns " + ", ".join(repr(c) for c in columns) if columns else "no columns"


def _as_datatype(column: np.ndarray, spec: TensorSpec, name: str) -> np.ndarray:
    if spec.datatype == "BYTES":
        return np.array([b"NA" if v is None else str(v).encode("utf-8") for v in column], dtype=np.object_)
    if column.dtype.kind in "OUS":
        raise ModelFailed(f"R column '{name}' holds text but output '{spec.name}' is {spec.datatype}; "
                          "declare the output BYTES or return numbers")
    return column.astype(NUMPY_DTYPES[spec.datatype], copy=False)
