"""The conclusion a person acts on: is the new version better, worse, or is there no evidence yet?

Figures alone invite reading noise as a finding (a 25-request canary at 0.64 against 0.68) and
leave the decision to whoever reads them. A verdict is reached in a fixed order, and always
says why: too few requests on a side decide nothing; a clearly higher error rate is worse;
where outcomes were reported, quality decides (a difference counts only at p < alpha); without
outcomes, answers that differ from the primary's beyond the stated thresholds count against
the new version, and answers within them show no harm but no improvement either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from meshserve.sidecars.compare.columns import label

BETTER, WORSE, NO_EVIDENCE = "better", "worse", "no evidence yet"


@dataclass(frozen=True)
class Thresholds:
    min_requests: int = 100  # per side (pairs for a shadow), and outcomes per side to judge quality
    alpha: float = 0.05  # a difference counts when its test's p-value is below this
    min_agreement: float = 0.95  # shadows: share of class rows answered as the primary did
    max_distance: float = 0.1  # Jensen-Shannon (labels) or Kolmogorov-Smirnov (numeric columns)
    max_error_rate_increase: float = 0.01

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def said(self) -> str:
        return (f"judged with: at least {self.min_requests} requests on each side (and as many outcomes to judge "
                f"quality); a difference counts at p < {self.alpha:g}; a shadow agrees with its primary on at least "
                f"{100 * self.min_agreement:g}% of class rows; label frequencies (Jensen-Shannon) and numeric "
                f"columns (Kolmogorov-Smirnov) differ by at most {self.max_distance:g}; the error rate rises by at "
                f"most {100 * self.max_error_rate_increase:g} percentage points")


def _sides(entry: dict[str, Any]) -> list[tuple[str, int]]:
    if entry["kind"] == "shadow":
        return [("pairs answered by both", entry["both_answered"])]
    return [("canary", entry["requests"]), ("primary", entry["primary_requests"])]


def warnings_for(entry: dict[str, Any], thresholds: Thresholds) -> list[str]:
    """Sample sizes too small to judge, said plainly."""
    said = []
    short = [(side, n) for side, n in _sides(entry) if n < thresholds.min_requests]
    if short:
        where = " in the window" if entry["kind"] == "canary" else ""
        said.append("too few requests to judge: " + ", ".join(f"{side} {n:,}" for side, n in short)
                    + f"{where} (at least {thresholds.min_requests} needed on each side)")
    for name, figures in ((entry.get("quality") or {}).get("outputs") or {}).items():
        counts = [(side, figures[side]["n"]) for side in ("primary", entry["kind"])]
        if min(n for _, n in counts) < thresholds.min_requests:
            said.append(f"too few outcomes to judge quality of {name}: "
                        + ", ".join(f"{side} {n:,}" for side, n in counts)
                        + f" (at least {thresholds.min_requests} needed on each side)")
    return said


def _errors(entry: dict[str, Any], thresholds: Thresholds) -> str | None:
    test = entry["errors"].get("difference")
    if test and test["difference"] > thresholds.max_error_rate_increase and test["pvalue"] < thresholds.alpha:
        errors = entry["errors"]
        return (f"error rate {100 * errors[entry['kind']]['error_rate']:.2f}% against the primary's "
                f"{100 * errors['primary']['error_rate']:.2f}% (p {test['pvalue']:.2g})")
    return None


def _quality(entry: dict[str, Any], thresholds: Thresholds) -> dict[str, str] | None:
    outputs = (entry.get("quality") or {}).get("outputs") or {}
    judged = {name: f for name, f in outputs.items()
              if min(f["primary"]["n"], f[entry["kind"]]["n"]) >= thresholds.min_requests}
    if not judged:
        return None
    better, worse, even = [], [], []
    for name, f in judged.items():
        metric, candidate, primary = f["metric"], f[entry["kind"]][f["metric"]], f["primary"][f["metric"]]
        said = (f"{name} {metric} {candidate:.4g} against the primary's {primary:.4g} "
                f"({f['test']} p {f['pvalue']:.2g})")
        gain = f["difference"] if f["higher_is_better"] else -f["difference"]
        (even if f["pvalue"] >= thresholds.alpha or gain == 0 else better if gain > 0 else worse).append(said)
    same = "on the same requests" if entry["kind"] == "shadow" else "in the same window"
    if worse:
        return {"verdict": WORSE, "basis": "quality", "reason": "; ".join(worse) + f", {same}"}
    if better:
        return {"verdict": BETTER, "basis": "quality", "reason": "; ".join(better) + f", {same}"}
    return {"verdict": NO_EVIDENCE, "basis": "quality",
            "reason": "; ".join(even) + f", {same}: a difference chance explains at p >= {thresholds.alpha:g}"}


def _beyond(entry: dict[str, Any], thresholds: Thresholds) -> list[str]:
    """Outputs and columns whose answers differ from the primary's beyond the thresholds."""
    found = []
    for name, f in entry["outputs"].items():
        if "agreement" in f and f["interval"][1] < thresholds.min_agreement:
            found.append(f"{name} (agreement {100 * f['agreement']:.1f}%, at most {100 * f['interval'][1]:.1f}% "
                         f"at 95% confidence, under {100 * thresholds.min_agreement:g}%)")
        elif "jensen_shannon" in f and f["jensen_shannon"] > thresholds.max_distance \
                and f["pvalue"] < thresholds.alpha:
            found.append(f"{name} (Jensen-Shannon {f['jensen_shannon']:.3f} > {thresholds.max_distance:g}, "
                         f"chi-square p {f['pvalue']:.2g})")
        for column, c in (f.get("columns") or {}).items():
            if c["ks_statistic"] > thresholds.max_distance and c["ks_pvalue"] < thresholds.alpha:
                found.append(f"{label(name, column)} (Kolmogorov-Smirnov {c['ks_statistic']:.3f} > "
                             f"{thresholds.max_distance:g}, p {c['ks_pvalue']:.2g})")
    return found


def verdict_for(entry: dict[str, Any], thresholds: Thresholds) -> dict[str, str]:
    short = [w for w in entry["warnings"] if w.startswith("too few requests")]
    if short:
        return {"verdict": NO_EVIDENCE, "basis": "sample size", "reason": short[0]}
    errors = _errors(entry, thresholds)
    if errors:
        return {"verdict": WORSE, "basis": "errors", "reason": errors}
    judged = _quality(entry, thresholds)
    if judged:
        return judged
    basis = "agreement" if entry["kind"] == "shadow" else "distribution"
    beyond = _beyond(entry, thresholds)
    if beyond:
        return {"verdict": WORSE, "basis": basis, "reason": "answers differ from the primary's beyond the "
                "thresholds, and no outcomes say which is right: " + "; ".join(beyond)}
    few = " (too few outcomes to judge quality yet)" if entry.get("quality") else ""
    return {"verdict": NO_EVIDENCE, "basis": basis,
            "reason": "answers within the thresholds of the primary's: no sign of harm, but without outcomes "
                      f"no evidence of improvement either{few}; report outcomes with `meshserve outcomes`"}
