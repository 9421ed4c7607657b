"""An MLflow model signature (the `signature:` of its MLmodel file) as meshserve's signature.

Column-based schemas (what `infer_signature` gives for a DataFrame) become one 2-D input whose
`features:` are the columns when every column has one numeric type, else one 1-D input per
column, as docs/model-package.md describes for DataFrame pipelines. Tensor-based schemas keep
their dtype and shape. An unnamed output is called `predictions`, as MLflow's scoring server
calls it.
"""

from __future__ import annotations

import json
from typing import Any

from meshserve.importing.model_uri import ImportFailure

COLUMN_TYPES = {"boolean": "BOOL", "integer": "INT32", "long": "INT64", "float": "FP32", "double": "FP64",
                "string": "BYTES", "binary": "BYTES"}
TENSOR_DTYPES = {"bool": "BOOL", "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
                 "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64", "float16": "FP16",
                 "float32": "FP32", "float64": "FP64", "object": "BYTES", "str": "BYTES", "bytes": "BYTES"}
NUMERIC = {"INT32", "INT64", "FP32", "FP64"}
FIX = ("log the model with a signature MLflow can express as tensors or scalar columns, or write the signature "
       "yourself and pass it with --signature FILE (docs/mlflow.md)")


def _schema(raw: Any, side: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    try:
        schema = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise ImportFailure(f"the MLmodel signature's {side} are not readable JSON ({exc}); {FIX}") from None
    if not isinstance(schema, list):
        raise ImportFailure(f"the MLmodel signature's {side} are not a list of columns or tensors; {FIX}")
    return schema


def _tensor(entry: dict[str, Any], name: str, side: str) -> dict[str, Any]:
    spec = entry.get("tensor-spec") or {}
    dtype = str(spec.get("dtype", ""))
    datatype = TENSOR_DTYPES.get(dtype)
    if datatype is None:
        raise ImportFailure(f"{side[:-1]} '{name}' is a tensor of dtype '{dtype}', which meshserve cannot carry; {FIX}")
    shape = [int(d) for d in spec.get("shape") or [-1]]
    return {"name": name, "datatype": datatype, "shape": shape}


def _column_type(entry: dict[str, Any], name: str, side: str) -> str:
    kind = entry.get("type")
    datatype = COLUMN_TYPES.get(kind) if isinstance(kind, str) else None
    if datatype is None:
        shown = kind if isinstance(kind, str) else json.dumps(kind)
        raise ImportFailure(f"{side[:-1]} column '{name}' has MLflow type {shown}, which meshserve's signature cannot "
                            f"carry; {FIX}")
    return datatype


def _inputs(schema: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if all(e.get("type") == "tensor" for e in schema):
        if len(schema) == 1:
            return [_tensor(schema[0], schema[0].get("name") or "inputs", "inputs")]
        return [_tensor(e, e.get("name") or f"input_{i}", "inputs") for i, e in enumerate(schema)]
    if any(e.get("type") == "tensor" for e in schema):
        raise ImportFailure(f"the MLmodel signature mixes tensors and columns in its inputs; {FIX}")
    unnamed = [i for i, e in enumerate(schema) if not e.get("name")]
    if unnamed and len(schema) > 1:
        raise ImportFailure(f"input columns {', '.join(map(str, unnamed))} have no names; {FIX}")
    columns = [(e.get("name") or "inputs", _column_type(e, e.get("name") or "inputs", "inputs")) for e in schema]
    types = {datatype for _, datatype in columns}
    if len(columns) > 1 and len(types) == 1 and types <= NUMERIC:
        return [{"name": "features", "datatype": types.pop(), "shape": [-1, len(columns)],
                 "features": [name for name, _ in columns]}]
    return [{"name": name, "datatype": datatype, "shape": [-1]} for name, datatype in columns]


def _outputs(schema: list[dict[str, Any]]) -> list[dict[str, Any]]:
    outputs = []
    for i, entry in enumerate(schema):
        name = entry.get("name") or ("predictions" if len(schema) == 1 else f"output_{i}")
        if entry.get("type") == "tensor":
            outputs.append(_tensor(entry, name, "outputs"))
        else:
            outputs.append({"name": name, "datatype": _column_type(entry, name, "outputs"), "shape": [-1]})
    return outputs


def signature_from_mlmodel(mlmodel: dict[str, Any], uri: str) -> dict[str, Any]:
    """meshserve's `signature:` for an MLmodel; ImportFailure when it has none or one meshserve cannot carry."""
    signature = mlmodel.get("signature") or {}
    inputs = _schema(signature.get("inputs"), "inputs")
    outputs = _schema(signature.get("outputs"), "outputs")
    if not inputs or not outputs:
        missing = "a signature" if not signature else ("input schema" if not inputs else "output schema")
        raise ImportFailure(
            f"{uri} was logged without {missing}, and meshserve checks every request against one: log it again "
            "with signature=infer_signature(X, model.predict(X)), or write the signature yourself (inputs and "
            "outputs as in docs/model-package.md) and pass it with --signature FILE")
    return {"inputs": _inputs(inputs), "outputs": _outputs(outputs)}


def columns_of(mlmodel: dict[str, Any]) -> list[str] | None:
    """The input column names of a column-based signature (what a pyfunc model gets as its DataFrame)."""
    schema = _schema((mlmodel.get("signature") or {}).get("inputs"), "inputs")
    if not schema or any(e.get("type") == "tensor" for e in schema):
        return None
    return [e.get("name") or "inputs" for e in schema]
