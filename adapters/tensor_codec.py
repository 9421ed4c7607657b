"""Open Inference Protocol tensors <-> numpy arrays, for every V2 datatype.

Data may travel in the typed `contents` fields or as raw little-endian bytes
(`raw_input_contents` / `raw_output_contents`; each BYTES element prefixed by its
4-byte little-endian length). Decoding checks element counts and byte lengths and
raises InvalidInput naming the tensor, so a malformed request never reaches a model.
"""

from __future__ import annotations

import struct

import numpy as np

from meshserve.core.datatypes import NUMPY_DTYPES
from meshserve.core.errors import InvalidInput, quoted
# The signature check's table of typed fields and its element count, so check and decoder never disagree.
from meshserve.core.signature_check import TYPED_FIELD, element_count

# The numpy type that holds each typed field's values exactly, before narrowing.
_WIRE_DTYPES = {"bool_contents": np.bool_, "int_contents": np.int64, "int64_contents": np.int64,
                "uint_contents": np.uint64, "uint64_contents": np.uint64, "fp32_contents": np.float32,
                "fp64_contents": np.float64, "bytes_contents": object}


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype name for a numpy array (object/str arrays are BYTES)."""
    if array.dtype.kind in "OSU":
        return "BYTES"
    for name, dtype in NUMPY_DTYPES.items():
        if name != "BYTES" and dtype == array.dtype.newbyteorder("<"):
            return name
    raise TypeError(f"no V2 datatype for numpy dtype {array.dtype}")


def serialize_bytes(array: np.ndarray) -> bytes:
    """BYTES elements, row-major, each prefixed by its 4-byte little-endian length."""
    parts = []
    for item in array.reshape(-1):
        data = item.encode("utf-8") if isinstance(item, str) else bytes(item)
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def deserialize_bytes(name: str, raw: bytes, count: int) -> np.ndarray:
    # Each element needs at least its 4-byte prefix: a count the bytes cannot hold is refused
    # before the array is allocated (a 141-byte request must not claim 2^31 elements).
    if count * 4 > len(raw):
        raise InvalidInput(name, f"raw BYTES contents hold {len(raw)} bytes, too few for {count} elements "
                                 "(each needs a 4-byte length prefix)")
    out = np.empty(count, dtype=object)
    offset, view = 0, memoryview(raw)
    for i in range(count):
        if offset + 4 > len(raw):
            raise InvalidInput(name, f"raw BYTES contents end after {i} of {count} elements")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInput(name, f"raw BYTES element {i} claims {length} bytes but only {len(raw) - offset} remain")
        out[i] = bytes(view[offset:offset + length])
        offset += length
    if offset != len(raw):
        raise InvalidInput(name, f"raw BYTES contents have {len(raw) - offset} bytes after the last of {count} elements")
    return out


def decode_tensor(name: str, datatype: str, shape, contents, raw: bytes | None) -> np.ndarray:
    """One request tensor as a numpy array of its shape, from raw bytes or typed contents (not both)."""
    if datatype not in NUMPY_DTYPES:
        raise InvalidInput(name, f"unknown datatype '{quoted(datatype)}'; use one of {', '.join(NUMPY_DTYPES)}")
    if any(d < 0 for d in shape):
        raise InvalidInput(name, f"shape {list(shape)} has a negative dimension")
    count = element_count(shape)
    dtype = NUMPY_DTYPES[datatype]
    if raw is not None:
        if contents is not None and contents.ListFields():
            raise InvalidInput(name, "has both typed contents and raw_input_contents; send the values one way only")
        if datatype == "BYTES":
            flat = deserialize_bytes(name, raw, count)
        else:
            expected = count * dtype.itemsize
            if len(raw) != expected:
                raise InvalidInput(
                    name, f"raw contents hold {len(raw)} bytes but shape {list(shape)} of {datatype} needs {expected}")
            flat = np.frombuffer(raw, dtype=dtype)
    else:
        values = getattr(contents, TYPED_FIELD[datatype]) if contents is not None else []
        if len(values) != count:
            raise InvalidInput(
                name, f"{TYPED_FIELD[datatype]} holds {len(values)} values but shape {list(shape)} needs {count}")
        if datatype == "BYTES":
            flat = np.empty(count, dtype=object)
            flat[:] = list(values)
        else:
            source = np.array(values, dtype=_WIRE_DTYPES[TYPED_FIELD[datatype]])
            flat = source.astype(dtype)
            if dtype.kind in "iu" and count and not np.array_equal(flat, source):
                raise InvalidInput(name, f"values do not fit in {datatype}")
    return flat.reshape(tuple(int(d) for d in shape))


def as_datatype(name: str, array, datatype: str) -> np.ndarray:
    """Coerce a model's output to its declared datatype, refusing lossy integer casts."""
    array = np.asarray(array)
    if datatype == "BYTES":
        if array.dtype.kind == "O":
            return array
        out = np.empty(array.shape, dtype=object)
        out.reshape(-1)[:] = [x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in array.reshape(-1)]
        return out
    dtype = NUMPY_DTYPES[datatype]
    if array.dtype == dtype:
        return array
    converted = array.astype(dtype)
    if dtype.kind in "iub" and array.dtype.kind in "iuf" and not np.array_equal(converted, array):
        raise TypeError(f"output '{name}' has values that do not fit its declared datatype {datatype}")
    return converted


def encode_tensor(array: np.ndarray, datatype: str, tensor, raw: bool) -> bytes | None:
    """Fill `tensor` (an InferOutputTensor or InferInputTensor); return its raw bytes if raw."""
    tensor.datatype = datatype
    tensor.shape.extend(array.shape)
    if raw:
        if datatype == "BYTES":
            return serialize_bytes(array)
        return np.ascontiguousarray(array, dtype=NUMPY_DTYPES[datatype]).tobytes()
    field = getattr(tensor.contents, TYPED_FIELD[datatype])
    flat = array.reshape(-1)
    if datatype == "BYTES":
        field.extend(x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in flat)
    else:
        field.extend(flat.tolist())
    return None
