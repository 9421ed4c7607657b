"""How a new version behaves beside the one it would replace, from the records of both, compared
like with like so that a difference in the figures is a difference between the versions.

A shadow answers copies of its primary's requests, so the two are compared pair by pair on the
same request ids: the agreement of class outputs (Wilson 95% interval), a confusion table, and
per numeric column the differences with a paired interval; quality on reported outcomes is
computed on exactly the requests both answered. A canary answers other requests than its
primary, so they are compared as distributions over the window in which both were live (the
canary's first to last record): label frequencies (Jensen-Shannon, chi-square) and each
numeric column (Kolmogorov-Smirnov), and quality on each side's outcomes in that window. An
output of several columns is compared column by column, never pooled (see `columns`). Every
comparison carries its sample sizes, warnings when they are too small, and a verdict
(`verdict`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from meshserve.sidecars.compare import significance
from meshserve.sidecars.compare.columns import columns_of, gather_columns, is_class, labels_of, rows_of
from meshserve.sidecars.compare.outcome_scores import paired_quality, window_quality
from meshserve.sidecars.compare.verdict import Thresholds, verdict_for, warnings_for

QUANTILES = ("p50", "p90", "p99", "max")


def agreement_interval(agree: int, pairs: int) -> tuple[float, float]:
    return significance.wilson(agree, pairs)


def _latency(records: list[dict]) -> dict[str, float]:
    latencies = np.asarray([r["latency_s"] for r in records if r["code"] == "OK"], dtype=float)
    if not len(latencies):
        return {}
    return {f"p{q}": float(np.quantile(latencies, q / 100)) * 1000 for q in (50, 90, 99)}


def _errors(records: list[dict]) -> dict[str, Any]:
    codes = Counter(r["code"] for r in records)
    total = sum(codes.values())
    failed = total - codes.get("OK", 0)
    return {"requests": total, "errors": failed, "error_rate": failed / total if total else 0.0,
            "codes": dict(sorted(codes.items()))}


def _errors_side_by_side(primary: list[dict], candidate: list[dict], kind: str) -> dict[str, Any]:
    first, second = _errors(primary), _errors(candidate)
    return {"primary": first, kind: second,
            "difference": significance.two_proportions((first["errors"], first["requests"]),
                                                       (second["errors"], second["requests"]))}


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {}
    return {"p50": float(np.quantile(values, 0.5)), "p90": float(np.quantile(values, 0.9)),
            "p99": float(np.quantile(values, 0.99)), "max": float(values.max())}


def _ks(first: np.ndarray, second: np.ndarray) -> dict[str, float]:
    test = stats.ks_2samp(first, second)
    return {"ks_statistic": float(test.statistic), "ks_pvalue": float(test.pvalue)}


def _aligned(pairs: list[tuple[dict, dict]], name: str) -> list[tuple[dict, dict]]:
    """The output NAME of each pair where both sides kept it with the same rows."""
    aligned = []
    for primary, shadow in pairs:
        a, b = (primary.get("outputs") or {}).get(name), (shadow.get("outputs") or {}).get(name)
        rows_a, rows_b = rows_of(a), rows_of(b)
        if rows_a is not None and rows_b is not None and len(rows_a) == len(rows_b):
            aligned.append((a, b))
    return aligned


def _paired_labels(tensors: list[tuple[dict, dict]]) -> dict[str, Any]:
    first = [v for a, _ in tensors for v in labels_of(a)]
    second = [v for _, b in tensors for v in labels_of(b)]
    agree = sum(a == b for a, b in zip(first, second))
    labels = sorted(set(first) | set(second))
    index = {name: i for i, name in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    for a, b in zip(first, second):
        confusion[index[a], index[b]] += 1
    return {"kind": "class", "pairs": len(first), "agreement": agree / len(first) if first else None,
            "interval": list(agreement_interval(agree, len(first))), "labels": labels,
            "confusion": confusion.tolist()}


def _paired_column(first: np.ndarray, second: np.ndarray) -> dict[str, Any]:
    absolute = np.abs(second - first)
    test = significance.paired_means(first, second)
    return {"pairs": len(first), "absolute_difference": _quantiles(absolute),
            "relative_difference": _quantiles(absolute / np.maximum(np.abs(first), 1e-12)),
            "mean_difference": test["difference"], "interval": test["interval"], "pvalue": test["pvalue"],
            "test": test["test"], **_ks(first, second)}


def _worst(columns: dict[str, dict], key: str) -> dict[str, float]:
    """Per quantile, the largest over the columns: an output's figure that no column hides behind."""
    return {q: max(c[key][q] for c in columns.values()) for q in QUANTILES if all(c[key] for c in columns.values())}


def _paired_numbers(name: str, tensors: list[tuple[dict, dict]]) -> dict[str, Any] | None:
    split = [(columns_of(name, a), columns_of(name, b)) for a, b in tensors]
    split = [(a, b) for a, b in split if a is not None and b is not None and list(a) == list(b)]
    if not split:
        return None
    names = list(split[0][0])
    split = [(a, b) for a, b in split if list(a) == names]
    columns = {column: _paired_column(np.concatenate([a[column] for a, _ in split]),
                                      np.concatenate([b[column] for _, b in split])) for column in names}
    return {"kind": "numeric", "pairs": columns[names[0]]["pairs"], "columns": columns,
            "absolute_difference": _worst(columns, "absolute_difference"),
            "relative_difference": _worst(columns, "relative_difference")}


def _shadow_outputs(both_ok: list[tuple[dict, dict]]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    names = sorted({n for p, s in both_ok for n in (p.get("outputs") or {}) if n in (s.get("outputs") or {})})
    for name in names:
        tensors = _aligned(both_ok, name)
        if not tensors:
            continue
        figures = _paired_labels(tensors) if is_class(tensors[0][0]) else _paired_numbers(name, tensors)
        if figures is not None:
            outputs[name] = figures
    return outputs


def compare_shadow(pairs: Iterable[tuple[dict, dict]], outcomes: dict[str, dict] | None = None,
                   thresholds: Thresholds | None = None) -> list[dict[str, Any]]:
    """One entry per shadow version and the version that answered its requests (the primary, or a
    canary when the model has one), on the same requests."""
    thresholds = thresholds or Thresholds()
    by_version: dict[tuple[str, str], list[tuple[dict, dict]]] = defaultdict(list)
    for primary, shadow in pairs:
        by_version[(shadow["version"], primary["version"])].append((primary, shadow))
    results = []
    for (version, primary_version), items in sorted(by_version.items()):
        both_ok = [(p, s) for p, s in items if p["code"] == "OK" and s["code"] == "OK"]
        primaries, shadows = [p for p, _ in items], [s for _, s in items]
        entry = {"version": version, "kind": "shadow", "primary_version": primary_version, "pairs": len(items),
                 "both_answered": len(both_ok), "errors": _errors_side_by_side(primaries, shadows, "shadow"),
                 "latency_ms": {"primary": _latency(primaries), "shadow": _latency(shadows)},
                 "outputs": _shadow_outputs(both_ok), "quality": paired_quality(both_ok, outcomes or {})}
        results.append(_judged(entry, thresholds))
    return results


def _judged(entry: dict[str, Any], thresholds: Thresholds) -> dict[str, Any]:
    entry["warnings"] = warnings_for(entry, thresholds)
    entry["verdict"] = verdict_for(entry, thresholds)
    return entry


def _label_distributions(primary: list[str], canary: list[str]) -> dict[str, Any]:
    labels = sorted(set(canary) | set(primary))
    fc, fp = Counter(canary), Counter(primary)
    pc = np.array([fc[label] / len(canary) for label in labels])
    pp = np.array([fp[label] / len(primary) for label in labels])
    return {"kind": "class", "n": {"primary": len(primary), "canary": len(canary)}, "labels": labels,
            "canary_frequency": pc.tolist(), "primary_frequency": pp.tolist(),
            "jensen_shannon": float(np.nan_to_num(jensenshannon(pc, pp, base=2))),  # equal ones can round to NaN
            "pvalue": significance.label_frequencies_differ(primary, canary), "test": "chi-square"}


def _column_distributions(primary: dict[str, np.ndarray], canary: dict[str, np.ndarray]) -> dict[str, Any]:
    columns = {column: {"n": {"primary": len(primary[column]), "canary": len(canary[column])},
                        "primary": _quantiles(primary[column]), "canary": _quantiles(canary[column]),
                        **_ks(primary[column], canary[column])}
               for column in canary if column in primary and len(canary[column]) and len(primary[column])}
    if not columns:
        return {}
    worst = max(columns.values(), key=lambda c: c["ks_statistic"])
    return {"kind": "numeric", "columns": columns, "ks_statistic": worst["ks_statistic"],
            "ks_pvalue": worst["ks_pvalue"]}


def _canary_outputs(primaries: list[dict], canaries: list[dict]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    primary_ok = [r for r in primaries if r["code"] == "OK"]
    canary_ok = [r for r in canaries if r["code"] == "OK"]
    for name in sorted({n for r in canary_ok for n in (r.get("outputs") or {})}):
        tensor = next(r["outputs"][name] for r in canary_ok if name in (r.get("outputs") or {}))
        if is_class(tensor):
            canary = [v for r in canary_ok for v in (labels_of((r.get("outputs") or {}).get(name)) or [])]
            primary = [v for r in primary_ok for v in (labels_of((r.get("outputs") or {}).get(name)) or [])]
            figures = _label_distributions(primary, canary) if canary and primary else {}
        else:
            figures = _column_distributions(gather_columns(primary_ok, name), gather_columns(canary_ok, name))
        if figures:
            outputs[name] = figures
    return outputs


def compare_canaries(answers: Iterable[dict], outcomes: dict[str, dict] | None = None,
                     thresholds: Thresholds | None = None) -> list[dict[str, Any]]:
    """One entry per canary version, against the primary's answers while the canary was live."""
    thresholds = thresholds or Thresholds()
    by_role: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in answers:
        if record["side"] == "adapter" and record["role"] in ("primary", "canary"):
            by_role[(record["role"], record["version"])].append(record)
    primaries = [r for (role, _), rs in by_role.items() if role == "primary" for r in rs]
    results = []
    for (role, version), canaries in sorted(by_role.items()):
        if role != "canary":
            continue
        start, end = min(r["time"] for r in canaries), max(r["time"] for r in canaries)
        beside = [r for r in primaries if start <= r["time"] <= end]
        entry = {"version": version, "kind": "canary",
                 "primary_version": ", ".join(sorted({r["version"] for r in beside})),
                 "window": {"start": start, "end": end}, "requests": len(canaries), "primary_requests": len(beside),
                 "errors": _errors_side_by_side(beside, canaries, "canary"),
                 "latency_ms": {"primary": _latency(beside), "canary": _latency(canaries)},
                 "outputs": _canary_outputs(beside, canaries),
                 "quality": window_quality(beside, canaries, outcomes or {})}
        results.append(_judged(entry, thresholds))
    return results


def _outcomes(store, model: str, since: float | None, until: float | None) -> dict[str, dict]:
    return {record["request_id"]: outcome for record, outcome in store.joined(model, since, until)
            if record["slot"] == "answer"}


def compare(store, model: str, since: float | None = None, until: float | None = None,
            limit: int | None = None, thresholds: Thresholds | None = None) -> dict[str, Any]:
    """Shadows and canaries of MODEL against what answered, each with its verdict; LIMIT bounds the
    records read (the newest LIMIT answers and shadow pairs)."""
    thresholds = thresholds or Thresholds()
    answers = list(store.query(model, since=since, until=until, limit=limit, newest_first=limit is not None))
    answers = [r for r in answers if r["slot"] == "answer"]
    outcomes = _outcomes(store, model, since, until)
    return {"model": model, "since": since, "until": until, "thresholds": thresholds.as_dict(),
            "shadows": compare_shadow(store.shadow_pairs(model, since, until, limit=limit), outcomes, thresholds),
            "canaries": compare_canaries(answers, outcomes, thresholds)}
