"""The classification extension of the Open Inference Protocol, as Triton answers it.

A client asks for the top K classes of an output instead of its scores by setting the
requested output's `classification` parameter (tritonclient's `InferRequestedOutput(name,
class_count=K)`; `class_count` is accepted too). The answer is a BYTES tensor of K strings per
row, best first, each `"score:index"`, or `"score:index:label"` when the output's signature
names its classes (`features` in model.yaml). The router checks the parameter before
forwarding and the adapter checks it again, so a bad one is refused before any model runs.
"""

from __future__ import annotations

import numpy as np

from meshserve.core.errors import InvalidInput
from meshserve.core.model_package import Signature

CLASSIFICATION_PARAMETERS = ("classification", "class_count")


def class_counts(request, signature: Signature) -> dict[str, int]:
    """Requested output name -> K for each output asked to be classified; raise InvalidInput for a
    count that is not a positive integer or an output that holds no scores."""
    counts = {}
    for requested in request.outputs:
        for key in CLASSIFICATION_PARAMETERS:
            if key not in requested.parameters:
                continue
            parameter = requested.parameters[key]
            kind = parameter.WhichOneof("parameter_choice")
            value = getattr(parameter, kind) if kind in ("int64_param", "uint64_param") else None
            if value is None or value <= 0:
                raise InvalidInput(requested.name, f"parameter '{key}' must be a positive integer (the number of "
                                                   "top classes to return)", kind="requested output")
            spec = signature.output(requested.name)
            if spec is not None and spec.datatype in ("BYTES", "BOOL"):
                raise InvalidInput(requested.name, f"a {spec.datatype} output cannot be classified; ask for "
                                                   "'classification' on an output of numeric scores",
                                   kind="requested output")
            counts[requested.name] = int(value)
    return counts


def classify(scores: np.ndarray, count: int, labels: list[str] | None, batched: bool) -> np.ndarray:
    """The top COUNT classes of SCORES as Triton's strings: per row when BATCHED (shape [rows, k]),
    else over the whole tensor (shape [k])."""
    rows = scores.reshape(scores.shape[0], -1) if batched and scores.ndim else scores.reshape(1, -1)
    k = min(count, rows.shape[1])
    best = np.argsort(-rows, axis=1, kind="stable")[:, :k]
    text = np.empty(best.shape, dtype=object)
    for r, row in enumerate(best):
        for j, index in enumerate(row):
            entry = f"{float(rows[r, index]):f}:{int(index)}"
            if labels is not None and index < len(labels):
                entry += f":{labels[index]}"
            text[r, j] = entry.encode()
    return text if batched else text.reshape(-1)
