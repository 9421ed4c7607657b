"""How a new version behaves beside the one it would replace, from the records of both.

A shadow answers copies of its primary's requests, so the two are compared pair by pair: the
agreement rate of class outputs (with a Wilson 95% interval and the number of pairs), a
confusion table of primary against shadow labels, and the absolute and relative differences
of numeric outputs. A canary answers other requests than its primary, so they are compared as
distributions over the same window: label frequencies (Jensen-Shannon distance) and numeric
quantiles (Kolmogorov-Smirnov). Both get error rates and latency percentiles side by side.
Statistics are scipy's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

CLASS_TYPES = {"BYTES", "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def _rows(tensor: dict[str, Any] | None) -> list | None:
    if tensor is None or "values" not in tensor:
        return None
    values = tensor["values"]
    return values if isinstance(values, list) else [values]


def _is_class(tensor: dict[str, Any]) -> bool:
    return tensor.get("datatype") in CLASS_TYPES


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


def agreement_interval(agree: int, pairs: int) -> tuple[float, float]:
    if pairs == 0:
        return 0.0, 1.0
    interval = stats.binomtest(agree, pairs).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {}
    return {"p50": float(np.quantile(values, 0.5)), "p90": float(np.quantile(values, 0.9)),
            "p99": float(np.quantile(values, 0.99)), "max": float(values.max())}


def compare_shadow(pairs: Iterable[tuple[dict, dict]]) -> list[dict[str, Any]]:
    """One entry per shadow version and the version that answered its requests (the primary, or a
    canary when the model has one), on the same requests."""
    by_version: dict[tuple[str, str], list[tuple[dict, dict]]] = defaultdict(list)
    for primary, shadow in pairs:
        by_version[(shadow["version"], primary["version"])].append((primary, shadow))
    results = []
    for (version, _), items in sorted(by_version.items()):
        outputs: dict[str, Any] = {}
        both_ok = [(p, s) for p, s in items if p["code"] == "OK" and s["code"] == "OK"]
        names = sorted({n for p, s in both_ok for n in (p.get("outputs") or {}) if n in (s.get("outputs") or {})})
        for name in names:
            labels_p, labels_s, numbers_p, numbers_s = [], [], [], []
            kind = None
            for p, s in both_ok:
                tp, ts = p["outputs"][name], s["outputs"][name]
                rp, rs = _rows(tp), _rows(ts)
                if rp is None or rs is None or len(rp) != len(rs):
                    continue
                kind = "class" if _is_class(tp) else "numeric"
                if kind == "class":
                    labels_p += [str(v[0] if isinstance(v, list) and len(v) == 1 else v) for v in rp]
                    labels_s += [str(v[0] if isinstance(v, list) and len(v) == 1 else v) for v in rs]
                else:
                    numbers_p.append(np.asarray(rp, dtype=float).reshape(-1))
                    numbers_s.append(np.asarray(rs, dtype=float).reshape(-1))
            if kind == "class":
                agree = sum(a == b for a, b in zip(labels_p, labels_s))
                low, high = agreement_interval(agree, len(labels_p))
                labels = sorted(set(labels_p) | set(labels_s))
                index = {label: i for i, label in enumerate(labels)}
                confusion = np.zeros((len(labels), len(labels)), dtype=int)
                for a, b in zip(labels_p, labels_s):
                    confusion[index[a], index[b]] += 1
                outputs[name] = {"kind": "class", "pairs": len(labels_p), "agreement": agree / len(labels_p)
                                 if labels_p else None, "interval": [low, high], "labels": labels,
                                 "confusion": confusion.tolist()}
            elif kind == "numeric":
                a, b = np.concatenate(numbers_p), np.concatenate(numbers_s)
                absolute = np.abs(b - a)
                relative = absolute / np.maximum(np.abs(a), 1e-12)
                outputs[name] = {"kind": "numeric", "pairs": len(a), "absolute_difference": _quantiles(absolute),
                                 "relative_difference": _quantiles(relative)}
        results.append({"version": version, "kind": "shadow", "pairs": len(items), "both_answered": len(both_ok),
                        "primary_version": items[0][0]["version"] if items else "",
                        "errors": {"primary": _errors([p for p, _ in items]), "shadow": _errors([s for _, s in items])},
                        "latency_ms": {"primary": _latency([p for p, _ in items]),
                                       "shadow": _latency([s for _, s in items])},
                        "outputs": outputs})
    return results


def _distribution(records: list[dict], name: str) -> tuple[str | None, list]:
    kind, values = None, []
    for record in records:
        tensor = (record.get("outputs") or {}).get(name)
        rows = _rows(tensor)
        if rows is None:
            continue
        kind = "class" if _is_class(tensor) else "numeric"
        if kind == "class":
            values += [str(v[0] if isinstance(v, list) and len(v) == 1 else v) for v in rows]
        else:
            values += np.asarray(rows, dtype=float).reshape(-1).tolist()
    return kind, values


def compare_canaries(answers: Iterable[dict]) -> list[dict[str, Any]]:
    """One entry per canary version, against the primary's answers in the same window."""
    by_role: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in answers:
        if record["side"] == "adapter" and record["role"] in ("primary", "canary"):
            by_role[(record["role"], record["version"])].append(record)
    primaries = [r for (role, _), rs in by_role.items() if role == "primary" for r in rs]
    results = []
    for (role, version), records in sorted(by_role.items()):
        if role != "canary":
            continue
        outputs: dict[str, Any] = {}
        names = sorted({n for r in records for n in (r.get("outputs") or {})})
        for name in names:
            kind, canary = _distribution([r for r in records if r["code"] == "OK"], name)
            _, primary = _distribution([r for r in primaries if r["code"] == "OK"], name)
            if not canary or not primary:
                continue
            if kind == "class":
                labels = sorted(set(canary) | set(primary))
                fc, fp = Counter(canary), Counter(primary)
                pc = np.array([fc[label] / len(canary) for label in labels])
                pp = np.array([fp[label] / len(primary) for label in labels])
                outputs[name] = {"kind": "class", "labels": labels, "canary_frequency": pc.tolist(),
                                 "primary_frequency": pp.tolist(),
                                 "jensen_shannon": float(jensenshannon(pc, pp, base=2))}
            else:
                a, b = np.asarray(primary), np.asarray(canary)
                test = stats.ks_2samp(a, b)
                outputs[name] = {"kind": "numeric", "primary": _quantiles(a), "canary": _quantiles(b),
                                 "ks_statistic": float(test.statistic), "ks_pvalue": float(test.pvalue)}
        results.append({"version": version, "kind": "canary", "requests": len(records),
                        "primary_requests": len(primaries),
                        "errors": {"primary": _errors(primaries), "canary": _errors(records)},
                        "latency_ms": {"primary": _latency(primaries), "canary": _latency(records)},
                        "outputs": outputs})
    return results


def compare(store, model: str, since: float | None = None, until: float | None = None,
            limit: int | None = None) -> dict[str, Any]:
    """Shadows and canaries of MODEL against what answered, and live quality; LIMIT bounds the records
    read (the newest LIMIT answers and shadow pairs)."""
    answers = list(store.query(model, since=since, until=until, limit=limit, newest_first=limit is not None))
    answers = [r for r in answers if r["slot"] == "answer"]
    from meshserve.sidecars.records.quality import quality

    return {"model": model, "since": since, "until": until,
            "shadows": compare_shadow(store.shadow_pairs(model, since, until, limit=limit)),
            "canaries": compare_canaries(answers),
            # Ground truth, where outcomes were reported: each version's live quality beside the rest.
            "quality": quality(store.joined(model, since, until))}
