"""One tensor's values between the REST protocol's JSON `data` and the gRPC protocol's raw bytes.

Shared by the router's REST listener and each adapter's. The router forwards raw bytes only
(every input raw, as the protocol requires once one is), so a JSON request is turned into
exactly what a binary one would have sent, and the adapter's checks see the same bytes
whichever binding and whichever hop the request came by. Values are checked against their
datatype here, where the JSON types are still known: a string among numbers, 1.5 for an INT32
or 300 for an INT8 is refused, never converted.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from meshserve.core.datatypes import NUMPY_DTYPES
from meshserve.core.errors import InvalidInput, quoted
from meshserve.core.signature_check import BYTES_PREFIX, TYPED_FIELD, element_count

# numpy's kinds each datatype accepts from parsed JSON (b bool, i/u integer, f float, U text).
ACCEPTED_KINDS = {"BOOL": "b", "FP16": "iuf", "FP32": "iuf", "FP64": "iuf", "BYTES": "U",
                  **{t: "iu" for t in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")}}
JSON_KIND = {"b": "true/false", "iu": "integers", "iuf": "numbers", "U": "strings"}


def raw_from_json(name: str, datatype: str, shape: list[int], data: Any) -> bytes:
    """DATA (flat or nested) as the raw contents of a DATATYPE tensor of SHAPE; InvalidInput if it does not fit."""
    if datatype not in ACCEPTED_KINDS:
        raise InvalidInput(name, f"datatype {datatype} cannot be sent as JSON data; send it as binary data "
                                 "(parameters.binary_data_size)")
    wanted = ACCEPTED_KINDS[datatype]
    try:
        array = np.asarray(data)
    except (ValueError, RecursionError):
        raise InvalidInput(name, "data is ragged: nested lists of different lengths; send a flat list or "
                                 "equal-length rows") from None
    count = element_count(shape)
    if array.size != count:
        raise InvalidInput(name, f"data holds {array.size} values but shape {shape} needs {count}")
    if count == 0:
        array = np.zeros(0, dtype=NUMPY_DTYPES[datatype] if datatype != "BYTES" else np.str_)
    elif wanted == "iu" and array.dtype.kind in "fO":
        # Integers beyond int64 (a UINT64 near 2**64, or one too large for any type) come out as
        # floats or objects: judge the JSON values themselves, exactly.
        array = _exact_integers(name, datatype, list(_flat(data)))
    elif array.dtype.kind not in wanted:
        raise InvalidInput(name, f"{datatype} data must be {JSON_KIND[wanted]}; it holds {_described(array)}")
    if datatype == "BYTES":
        if not all(isinstance(value, str) for value in _flat(data)):  # numpy turns 1 into "1"
            raise InvalidInput(name, "BYTES data must be strings only")
        return b"".join(struct.pack("<I", len(encoded)) + encoded
                        for encoded in (value.encode() for value in array.ravel().tolist()))
    dtype = NUMPY_DTYPES[datatype]
    if dtype.kind in "iu" and array.size:
        info = np.iinfo(dtype)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            raise InvalidInput(name, f"value {low if low < info.min else high} does not fit {datatype} "
                                     f"({info.min} to {info.max})")
    return array.astype(dtype).tobytes()


def _described(array: np.ndarray) -> str:
    kind = array.dtype.kind
    if kind == "O":
        return "nulls, objects or integers too large for 64 bits"
    return {"b": "true/false", "i": "integers", "u": "integers", "f": "numbers with fractions",
            "U": "strings"}.get(kind, str(array.dtype))


def _flat(data: Any):
    """The leaves of nested lists, in order, without recursion (nesting depth is the client's)."""
    stack = [iter([data])]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            yield item
        else:
            stack.pop()


def _exact_integers(name: str, datatype: str, values: list) -> np.ndarray:
    for value in values:
        if type(value) is not int:
            raise InvalidInput(name, f"{datatype} data must be integers; it holds {quoted(repr(value))}")
    info = np.iinfo(NUMPY_DTYPES[datatype])
    for value in values:
        if not info.min <= value <= info.max:
            raise InvalidInput(name, f"value {value} does not fit {datatype} ({info.min} to {info.max})")
    return np.array(values, dtype=NUMPY_DTYPES[datatype])


def values_of(datatype: str, raw: bytes | None, contents=None) -> np.ndarray | list[str]:
    """An answered tensor's values, flat: from its raw bytes, else its typed contents."""
    if datatype == "BYTES":
        items = split_bytes(raw) if raw is not None else list(contents.bytes_contents)
        return [item.decode(errors="replace") for item in items]
    dtype = NUMPY_DTYPES[datatype]
    if raw is not None:
        return np.frombuffer(raw, dtype=dtype)
    return np.asarray(getattr(contents, TYPED_FIELD[datatype]), dtype=dtype)


def split_bytes(raw: bytes) -> list[bytes]:
    items, offset = [], 0
    while offset + BYTES_PREFIX <= len(raw):
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += BYTES_PREFIX
        items.append(raw[offset:offset + size])
        offset += size
    return items


def raw_of(datatype: str, raw: bytes | None, contents=None) -> bytes:
    """An answered tensor as binary data: its raw bytes, or its typed contents packed as raw."""
    if raw is not None:
        return raw
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(item)) + item for item in contents.bytes_contents)
    return np.asarray(getattr(contents, TYPED_FIELD[datatype]), dtype=NUMPY_DTYPES[datatype]).tobytes()
