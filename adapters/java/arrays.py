"""Tensors <-> Java arrays: numpy inputs as flat Java primitive arrays (one copy, never nested
lists), Java results (arrays through their buffers, io.meshserve.Tensor, boxed scalars, Strings)
as numpy arrays of an output's declared shape."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from meshserve.core.errors import InvalidInput, ModelFailed
from meshserve.core.model_package import TensorSpec


# V2 datatype -> (numpy dtype the Java array is filled from, JPype primitive type name)
JAVA_ARRAYS = {
    "FP64": (np.float64, "JDouble"), "FP32": (np.float32, "JFloat"), "FP16": (np.float32, "JFloat"),
    "INT64": (np.int64, "JLong"), "UINT64": (np.int64, "JLong"), "UINT32": (np.int64, "JLong"),
    "INT32": (np.int32, "JInt"), "UINT16": (np.int32, "JInt"),
    "INT16": (np.int16, "JShort"), "UINT8": (np.int16, "JShort"), "INT8": (np.int8, "JByte"),
    "BOOL": (np.bool_, "JBoolean"), "BYTES": (object, "JString"),
}
_NUMPY_OUT = {
    "FP64": np.float64, "FP32": np.float32, "FP16": np.float16, "INT64": np.int64, "UINT64": np.uint64,
    "INT32": np.int32, "UINT32": np.uint32, "INT16": np.int16, "UINT16": np.uint16, "INT8": np.int8,
    "UINT8": np.uint8, "BOOL": np.bool_, "BYTES": object,
}


def to_java_array(name: str, values: np.ndarray, datatype: str):
    """A flat Java primitive array filled from VALUES in one copy (String[] for BYTES)."""
    import jpype

    dtype, jtype = JAVA_ARRAYS[datatype]
    if datatype == "BYTES":
        try:
            texts = [v.decode("utf-8") if isinstance(v, (bytes, bytearray)) else str(v) for v in values.reshape(-1)]
        except UnicodeDecodeError as exc:
            raise InvalidInput(name, f"BYTES values must be UTF-8 text for a Java model ({exc})") from exc
        return jpype.JArray(jpype.JString)(texts)
    flat = np.ascontiguousarray(values.reshape(-1), dtype=dtype)
    return jpype.JArray(getattr(jpype, jtype))(flat)


def to_java_matrix(name: str, values: np.ndarray, datatype: str):
    import jpype

    dtype, jtype = JAVA_ARRAYS[datatype]
    rows = np.ascontiguousarray(values.reshape(values.shape[0], -1), dtype=dtype)
    return jpype.JArray(getattr(jpype, jtype), 2)([r for r in rows])


def from_java(value: Any, spec: TensorSpec, rows: int) -> np.ndarray:
    """A Java result (array, Tensor, String, boxed or primitive scalar) as the output SPEC."""
    import jpype

    shape = None
    if isinstance(value, jpype.JObject) and value.getClass().getName() == "io.meshserve.Tensor":
        shape = [int(d) for d in value.shape()]
        value = value.data()
    array = java_to_numpy(value)
    return fit_shape(array, spec, rows, shape)


def java_to_numpy(value: Any) -> np.ndarray:
    import jpype

    if value is None:
        raise ModelFailed("Java model returned null")
    if isinstance(value, jpype.JArray):
        try:  # primitive arrays expose their memory: one copy, no per-element calls
            return np.array(memoryview(value))
        except (TypeError, BufferError):
            pass
        component = value.getClass().getComponentType()
        if component.isPrimitive():
            return np.array(value)  # buffer protocol: one copy
        if component.getName() == "java.lang.String":
            return np.array([None if s is None else str(s).encode("utf-8") for s in value], dtype=object)
        return np.array([java_to_numpy(v) for v in value])
    if isinstance(value, (jpype.JString, str)):
        return np.array([str(value).encode("utf-8")], dtype=object)
    if isinstance(value, (bool, int, float)):
        return np.array([value])
    if isinstance(value, jpype.JObject) and value.getClass().getName().startswith("java.lang."):
        return np.array([value.doubleValue() if hasattr(value, "doubleValue") else bool(value.booleanValue())])
    raise ModelFailed(f"cannot turn a Java {value.getClass().getName()} into a tensor; return a primitive array or io.meshserve.Tensor")


def fit_shape(array: np.ndarray, spec: TensorSpec, rows: int, shape: list[int] | None = None) -> np.ndarray:
    """Reshape a flat or stacked result to the declared output shape (-1 dims from the row count)."""
    out_dtype = _NUMPY_OUT[spec.datatype]
    if shape is None:
        fixed = math.prod(d for d in spec.shape if d != -1)
        variable = [i for i, d in enumerate(spec.shape) if d == -1]
        if len(variable) == 1 and fixed and array.size % fixed == 0:
            shape = [array.size // fixed if d == -1 else d for d in spec.shape]
        elif not variable and array.size == fixed:
            shape = list(spec.shape)
        elif spec.accepts_shape(array.shape):
            shape = list(array.shape)
        else:
            raise ModelFailed(f"Java model returned {array.size} values for output '{spec.name}' "
                              f"of shape {spec.shape} and {rows} rows; return an io.meshserve.Tensor with its shape")
    if math.prod(shape) != array.size or not spec.accepts_shape(shape):
        raise ModelFailed(f"Java model returned shape {shape} for output '{spec.name}', declared {spec.shape}")
    if spec.shape and spec.shape[0] == -1 and shape[0] != rows:
        raise ModelFailed(f"Java model returned {shape[0]} rows for output '{spec.name}', the request has {rows}")
    if out_dtype is object:
        return array.reshape(shape).astype(object)
    return array.reshape(shape).astype(out_dtype, copy=False)
