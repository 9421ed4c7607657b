"""One prediction record: what an inference was, as data ready for JSON (numeric tensors as numpy arrays).

Built from the `InferenceEvent` a server hands its observers, before the answer leaves the
process. Tensors keep their datatype, shape and feature names; inputs marked `pii: true` are
replaced element by element by an HMAC-SHA256 under the operator's key, so their clear
values never reach the spool, the store or anything read from it. A tensor larger than
`records_max_tensor_bytes` is kept as a marker (datatype, shape, size), never silently dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from typing import Any

import numpy as np

from meshserve.core.model_package import ModelPackage, TensorSpec
from meshserve.core.observers import InferenceEvent

SHADOW = "shadow"


def slot_of(role: str, version: str) -> str:
    """What makes a record unique beside its request id: the answer the client got, or one
    shadow's copy. A client request has one answer (whichever side recorded it, after any
    retries) and at most one record per shadow version."""
    return f"shadow:{version}" if role == SHADOW else "answer"


def package_fields(package: ModelPackage | None) -> dict[str, Any]:
    if package is None:
        return {"digest": "", "training_data_sha256": "", "code_revision": ""}
    provenance = package.manifest.provenance
    return {"digest": package.digest, "training_data_sha256": provenance.training_data_sha256 or "",
            "code_revision": provenance.code_revision or ""}


def package_record(package: ModelPackage) -> dict[str, Any]:
    """What an audit shows of the package behind a digest: provenance and captured environment."""
    manifest = package.manifest
    return {"kind": "package", "digest": package.digest, "model": package.name, "version": package.version,
            "runtime": manifest.runtime, "path": str(package.directory),
            "provenance": manifest.provenance.model_dump(),
            "environment": manifest.environment or {},
            "signature": manifest.signature.model_dump(), "recorded_at": time.time()}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and infinities: JSON has no number for them
    return value


def _hashed(array: np.ndarray, key: bytes) -> list:
    def one(value: Any) -> str:
        data = value if isinstance(value, bytes) else str(value).encode() if isinstance(value, str) else \
            np.asarray(value).tobytes()
        return hmac.new(key, data, hashlib.sha256).hexdigest()

    flat = [one(v) for v in array.reshape(-1).tolist()] if array.dtype != object else \
        [one(v) for v in array.reshape(-1)]
    return np.array(flat, dtype=object).reshape(array.shape).tolist()


def encode_tensor(name: str, array: np.ndarray, spec: TensorSpec | None, limit: int, pii_key: bytes | None) -> dict:
    array = np.asarray(array)
    tensor: dict[str, Any] = {"datatype": spec.datatype if spec else str(array.dtype), "shape": list(array.shape)}
    if spec is not None and spec.features:
        tensor["features"] = list(spec.features)
    nbytes = array.nbytes if array.dtype != object else sum(len(v) if isinstance(v, bytes) else 8
                                                            for v in array.reshape(-1))
    if spec is not None and spec.pii:
        tensor["pii"] = "hmac-sha256"
        if pii_key is None:  # the servers refuse to start like this; never store clear values anyway
            tensor["omitted"] = "pii input and no MESHSERVE_RECORDS_PII_KEY"
            return tensor
        if nbytes > limit:
            tensor["omitted"] = f"{nbytes} bytes, above the {limit}-byte record limit"
            return tensor
        tensor["values"] = _hashed(array, pii_key)
        return tensor
    if nbytes > limit:
        tensor["omitted"] = f"{nbytes} bytes, above the {limit}-byte record limit (MESHSERVE_RECORDS_MAX_TENSOR_BYTES)"
        return tensor
    if array.dtype == object:
        tensor["values"] = np.vectorize(_plain, otypes=[object])(array).tolist() if array.size else array.tolist()
    elif array.dtype.kind == "f" and not np.isfinite(array).all():
        tensor["values"] = np.vectorize(_plain, otypes=[object])(array.astype(object)).tolist()
    elif array.dtype.kind in "biuf":
        # The spool's encoder (orjson) writes numeric arrays in C; float64 keeps the values a list would hold.
        tensor["values"] = np.ascontiguousarray(array, dtype=np.float64 if array.dtype.kind == "f" else None)
    else:
        tensor["values"] = array.tolist()
    return tensor


def record_from_event(event: InferenceEvent, package: ModelPackage | None, limit: int,
                      pii_key: bytes | None) -> dict[str, Any]:
    signature = package.manifest.signature if package is not None else None

    def tensors(values, spec_of) -> dict | None:
        if values is None:
            return None
        return {name: encode_tensor(name, array, spec_of(name) if signature else None, limit, pii_key)
                for name, array in values.items()}

    call = event.call
    return {
        "kind": "record",
        "request_id": call.request_id,
        "slot": slot_of(call.role, event.version),
        "trace_id": call.trace_id,
        "time": event.started_at,
        "side": event.side,
        "model": event.model,
        "version": event.version,
        "role": call.role if event.side == "adapter" else "",
        **package_fields(package),
        "code": event.code.name,
        "error": event.error,
        "latency_s": event.timings.get("total", 0.0),
        "batch_size": event.batch_size,
        "timings": {k: round(v, 9) for k, v in event.timings.items()},
        "inputs": tensors(event.inputs, signature.input if signature else None),
        "outputs": tensors(event.outputs, signature.output if signature else None),
    }
