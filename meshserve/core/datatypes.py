"""The Open Inference Protocol's datatypes as numpy sees them: one table for the whole mesh."""

from __future__ import annotations

import numpy as np

# Named tensors, as runtimes take and give them and observers see them: input or output name -> array.
Tensors = dict[str, np.ndarray]

# Little-endian, as the protocol's raw contents are. BYTES elements are Python bytes objects.
NUMPY_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}


def element_size(datatype: str) -> int | None:
    """Bytes per element in raw contents; None for BYTES, whose elements vary in length."""
    dtype = NUMPY_DTYPES[datatype]
    return None if dtype == np.dtype(object) else dtype.itemsize
