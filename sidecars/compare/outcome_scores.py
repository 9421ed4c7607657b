"""Quality on reported outcomes, for two versions on comparable requests.

`meshserve quality` scores each version on whatever requests it answered. Set side by side,
those figures mislead: a shadow copies only some requests, so its primary's accuracy over all
outcomes is measured on other, perhaps easier, requests. Here a shadow and its primary are
scored on exactly the requests both answered and that have an outcome, row by row, so the
paired tests of `significance` apply; a canary and its primary are scored on their own
requests within the same window. Class outputs are judged by accuracy, numeric ones by mean
absolute error, the headline figures of `meshserve quality`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from meshserve.sidecars.compare import significance
from meshserve.sidecars.compare.columns import columns_of, is_class, labels_of


def _truth_rows(truth: Any) -> list:
    rows = truth if isinstance(truth, list) else [truth]
    return [v[0] if isinstance(v, list) and len(v) == 1 else v for v in rows]


def scored(record: dict, outcome: dict) -> dict[str, tuple[str, np.ndarray]]:
    """Output -> (kind, per row: right or not for a class output, absolute error for a numeric one)."""
    outputs = record.get("outputs") or {}
    result = {}
    for name, truth in outcome["values"].items():
        tensor, truth_rows = outputs.get(name), _truth_rows(truth)
        if tensor is None or "values" not in tensor:
            continue
        if is_class(tensor):
            predicted = labels_of(tensor)
            if len(predicted) == len(truth_rows):
                result[name] = ("class", np.array([p == str(t) for p, t in zip(predicted, truth_rows)]))
            continue
        columns = columns_of(name, tensor)
        if columns is None or len(columns) != 1:
            continue  # an outcome for one of several columns names no column: not scored
        [values] = columns.values()
        try:
            expected = np.asarray(truth_rows, dtype=float)
        except (TypeError, ValueError):
            continue
        if expected.shape == values.shape:
            result[name] = ("numeric", np.abs(values - expected))
    return result


def _side(kind: str, values: np.ndarray) -> dict[str, Any]:
    if kind == "class":
        return {"n": len(values), "accuracy": float(values.mean()) if len(values) else None}
    return {"n": len(values), "mae": float(values.mean()) if len(values) else None}


def _figures(kind: str, candidate: str, first: np.ndarray, second: np.ndarray, paired: bool) -> dict[str, Any]:
    if kind == "class":
        test = significance.paired_proportions(first, second) if paired else \
            significance.two_proportions((int(first.sum()), len(first)), (int(second.sum()), len(second)))
    else:
        test = significance.paired_means(first, second) if paired else significance.two_means(first, second)
    return {"kind": kind, "metric": "accuracy" if kind == "class" else "mae", "higher_is_better": kind == "class",
            "primary": _side(kind, first), candidate: _side(kind, second), **test}


def paired_quality(pairs: Iterable[tuple[dict, dict]], outcomes: dict[str, dict]) -> dict[str, Any] | None:
    """A shadow and the version that answered, on the rows of the requests both answered that have an
    outcome; None when none has."""
    firsts: dict[str, list] = defaultdict(list)
    seconds: dict[str, list] = defaultdict(list)
    kinds: dict[str, str] = {}
    requests = 0
    for primary, shadow in pairs:
        outcome = outcomes.get(primary["request_id"])
        if outcome is None or primary["code"] != "OK" or shadow["code"] != "OK":
            continue
        a, b = scored(primary, outcome), scored(shadow, outcome)
        shared = [name for name in a if name in b and len(a[name][1]) == len(b[name][1])]
        for name in shared:
            kinds[name] = a[name][0]
            firsts[name].append(a[name][1])
            seconds[name].append(b[name][1])
        requests += bool(shared)
    if not requests:
        return None
    return {"requests": requests,
            "outputs": {name: _figures(kind, "shadow", np.concatenate(firsts[name]), np.concatenate(seconds[name]),
                                       paired=True) for name, kind in sorted(kinds.items())}}


def _scored_side(records: list[dict], outcomes: dict[str, dict]) -> tuple[int, dict[str, tuple[str, np.ndarray]]]:
    parts: dict[str, list] = defaultdict(list)
    kinds: dict[str, str] = {}
    requests = 0
    for record in records:
        outcome = outcomes.get(record["request_id"])
        if outcome is None or record["code"] != "OK":
            continue
        scores = scored(record, outcome)
        for name, (kind, values) in scores.items():
            kinds[name] = kind
            parts[name].append(values)
        requests += bool(scores)
    return requests, {name: (kinds[name], np.concatenate(values)) for name, values in parts.items()}


def window_quality(primaries: list[dict], canaries: list[dict], outcomes: dict[str, dict]) -> dict[str, Any] | None:
    """A canary and its primary, each on its own requests with an outcome in the same window."""
    primary_requests, primary = _scored_side(primaries, outcomes)
    canary_requests, canary = _scored_side(canaries, outcomes)
    shared = sorted(name for name in canary if name in primary and primary[name][0] == canary[name][0])
    if not shared:
        return None
    return {"requests": canary_requests, "primary_requests": primary_requests,
            "outputs": {name: _figures(canary[name][0], "canary", primary[name][1], canary[name][1], paired=False)
                        for name in shared}}
