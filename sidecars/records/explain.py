"""Why a recorded prediction came out as it did: per-feature attributions against a background.

For one recorded row x and a background of rows from recent records of the same model version,
the attribution of feature j is f(x) - mean over background rows b of f(x with x_j := b_j): how
much the answer moves when that one feature takes typical values instead of its own. It needs
nothing of the model but its answers (any runtime, any world), and all F x B perturbed rows go
to the version that made the prediction in one request. f is one numeric output: the output's
value for a 1-D output, or for a 2-D one (class probabilities) the column the model chose for x.

A prediction cannot be explained when its inputs were not kept (pii inputs hold hashes, large
tensors a marker) or no background of the same version exists; the error says which.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from meshserve.core.datatypes import NUMPY_DTYPES
from meshserve.sidecars.records.store import RecordStore

EXPLAIN_ID_PREFIX = "explain-"  # requests explain sends; never part of a background


class CannotExplain(ValueError):
    pass


def _inputs_of(record: dict[str, Any]) -> dict[str, np.ndarray]:
    inputs = record.get("inputs") or {}
    if not inputs:
        raise CannotExplain(f"request {record['request_id']} has no recorded inputs "
                            f"(status {record['code']}: the mesh refused it before decoding)")
    arrays = {}
    for name, tensor in inputs.items():
        if tensor.get("pii"):
            raise CannotExplain(f"input '{name}' is marked pii and only its keyed hash was recorded; "
                                "a hash cannot be fed back to the model")
        if "values" not in tensor:
            raise CannotExplain(f"input '{name}' was not kept in the record ({tensor.get('omitted')})")
        dtype = NUMPY_DTYPES.get(tensor["datatype"], np.dtype(object))
        if dtype == np.dtype(object):  # BYTES went into the record as text
            encode = np.vectorize(lambda v: v.encode() if isinstance(v, str) else v, otypes=[object])
            arrays[name] = encode(np.array(tensor["values"], dtype=object))
        else:
            arrays[name] = np.array(tensor["values"], dtype=dtype)
    return arrays


def _features(inputs: dict[str, np.ndarray], record: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    """(feature label, input name, column or None for a 1-D input)."""
    found = []
    for name, array in inputs.items():
        names = (record["inputs"][name].get("features") or [])
        if array.ndim == 2:
            for j in range(array.shape[1]):
                found.append((names[j] if j < len(names) else f"{name}[{j}]", name, j))
        elif array.ndim == 1:
            found.append((name, name, None))
    return found


def explain(store: RecordStore, request_id: str, predict: Callable[[str, str, dict[str, np.ndarray]], dict],
            background: int = 50, output: str | None = None, row: int = 0) -> dict[str, Any]:
    """Attributions for row ROW of REQUEST_ID's answer; PREDICT(model, version, inputs) calls that version."""
    records = [r for r in store.records_for(request_id) if r["slot"] == "answer"]
    if not records:
        raise CannotExplain(f"no record of request {request_id}")
    record = records[0]
    if record["code"] != "OK":
        raise CannotExplain(f"request {request_id} was not answered (status {record['code']}): nothing to explain")
    x = {name: array[row:row + 1] for name, array in _inputs_of(record).items()}
    features = _features(x, record)
    rows = []
    for other in store.query(record["model"], record["version"], limit=background * 4, newest_first=True):
        if other["code"] != "OK" or other["request_id"].startswith(EXPLAIN_ID_PREFIX) or other["request_id"] == request_id:
            continue
        try:
            arrays = _inputs_of(other)
        except CannotExplain:
            continue
        if set(arrays) != set(x) or any(arrays[n].shape[1:] != x[n].shape[1:] for n in x):
            continue
        rows.append({n: a[:1] for n, a in arrays.items()})
        if len(rows) >= background:
            break
    if not rows:
        raise CannotExplain(f"no background: no other answered request of {record['model']} version "
                            f"{record['version']} with its inputs recorded; serve some traffic first")
    base = {n: np.concatenate([x[n]] * (1 + len(features) * len(rows))) for n in x}
    for fi, (_, name, column) in enumerate(features):
        for bi, b in enumerate(rows):
            index = 1 + fi * len(rows) + bi
            if column is None:
                base[name][index] = b[name][0]
            else:
                base[name][index, column] = b[name][0, column]
    started = time.monotonic()
    outputs = predict(record["model"], record["version"], base)
    # Probabilities and scores say more than a label: floating outputs first.
    numeric = sorted((n for n, a in outputs.items() if np.asarray(a).dtype.kind in "fiub"),
                     key=lambda n: np.asarray(outputs[n]).dtype.kind != "f")
    chosen = output or (numeric[0] if numeric else None)
    if chosen is None or chosen not in outputs:
        raise CannotExplain(f"no numeric output to explain (outputs: {', '.join(outputs)}); name one with --output")
    values = np.asarray(outputs[chosen], dtype=np.float64)
    target = ""
    if values.ndim == 2:
        column = int(np.argmax(values[0]))
        values, target = values[:, column], f"[{column}]"
    values = values.reshape(len(values), -1)[:, 0]
    attributions = {}
    for fi, (label, _, _) in enumerate(features):
        start = 1 + fi * len(rows)
        attributions[label] = float(values[0] - values[start:start + len(rows)].mean())
    explanation = {
        "method": "single-feature replacement against a background of recorded rows",
        "output": chosen + target, "value": float(values[0]), "background_rows": len(rows), "row": row,
        "attributions": dict(sorted(attributions.items(), key=lambda item: -abs(item[1]))),
        "computed_at": time.time(), "seconds": round(time.monotonic() - started, 3),
    }
    store.save_explanation(request_id, record["slot"], explanation)
    return explanation
