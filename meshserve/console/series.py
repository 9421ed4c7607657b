"""Per-version series for the console's charts, from the counts the records store aggregates.

The store counts records per (version, role, step) and per latency bin (store.traffic,
store.latency_bins); this module turns those counts into what a chart draws: requests and errors
per second, p50 and p99 latency read off the bins (as Prometheus reads a histogram), and the
split of answered traffic between versions over the last seconds. Nothing here reads a record.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from meshserve.sidecars.records.store import LATENCY_BOUNDS

SPLIT_SECONDS = 30.0  # the split shown as "now": answers of the last half minute


def quantile_of(counts: dict[int, int], q: float) -> float | None:
    """The Q-quantile (seconds) of latencies counted per bin, interpolated inside its bin."""
    total = sum(counts.values())
    if total == 0:
        return None
    wanted, seen = q * total, 0
    for index in sorted(counts):
        n = counts[index]
        if seen + n >= wanted and n:
            if index >= len(LATENCY_BOUNDS):
                return LATENCY_BOUNDS[-1]
            lower = LATENCY_BOUNDS[index - 1] if index else 0.0
            return lower + (LATENCY_BOUNDS[index] - lower) * (wanted - seen) / n
        seen += n
    return LATENCY_BOUNDS[-1]


def _key(row: dict[str, Any]) -> tuple[str, str]:
    return str(row["version"]), str(row["role"])


def series(traffic: list[dict], latency: list[dict], since: float, step_s: float, steps: int) -> dict[str, Any]:
    """Chart series per (version, role): x (step starts), requests/s, errors/s, p50 and p99 (ms)."""
    requests: dict[tuple, list[float]] = defaultdict(lambda: [0.0] * steps)
    errors: dict[tuple, list[float]] = defaultdict(lambda: [0.0] * steps)
    by_code: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in traffic:
        bucket = int(row["bucket"])
        if not 0 <= bucket < steps:
            continue
        key = _key(row)
        requests[key][bucket] += row["requests"] / step_s
        if row["code"] != "OK":
            errors[key][bucket] += row["requests"] / step_s
            by_code[key][row["code"]] += int(row["requests"])
        errors[key]  # every key that has requests has an error line, zero or not
    bins: dict[tuple, dict[int, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for row in latency:
        bucket = int(row["bucket"])
        if 0 <= bucket < steps:
            bins[_key(row)][bucket][int(row["bin"])] = int(row["n"])
    out = []
    for key in sorted(set(requests) | set(bins)):
        per_step = bins.get(key, {})
        quantiles = {name: [_ms(quantile_of(per_step.get(b, {}), q)) for b in range(steps)]
                     for name, q in (("p50_ms", 0.5), ("p99_ms", 0.99))}
        every = defaultdict(int)
        for counts in per_step.values():
            for index, n in counts.items():
                every[index] += n
        out.append({"version": key[0], "role": key[1], "requests_per_s": _rounded(requests[key]),
                    "errors_per_s": _rounded(errors[key]), **quantiles,
                    "errors_by_code": dict(sorted(by_code[key].items())),
                    "requests": int(round(sum(requests[key]) * step_s)),
                    "p50_ms_window": _ms(quantile_of(every, 0.5)), "p99_ms_window": _ms(quantile_of(every, 0.99))})
    return {"x": [since + i * step_s for i in range(steps)], "step_s": step_s, "series": out}


def split(traffic: list[dict], since: float, step_s: float, until: float) -> dict[str, float]:
    """Each version's share (percent) of the answers clients got in the last SPLIT_SECONDS."""
    first = max(0, int((until - SPLIT_SECONDS - since) // step_s))
    counts: dict[str, int] = defaultdict(int)
    for row in traffic:
        if int(row["bucket"]) >= first and row["role"] != "shadow":
            counts[str(row["version"])] += int(row["requests"])
    total = sum(counts.values())
    return {v: round(100.0 * n / total, 1) for v, n in sorted(counts.items())} if total else {}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000.0 * seconds, 3)


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 3) for v in values]
