"""The drift tests: live values of one column against its baseline.

Every comparison reports an effect size and a significance test, and drift is both at once:

- the effect size says how much the distribution moved: PSI (population stability index) over
  the baseline's bins (deciles for numbers, categories for categories, plus a bin for missing
  values), with Jensen-Shannon distance (0..1) beside it, and for numbers the Wasserstein
  distance in baseline standard deviations;
- the test says the move is not chance: chi-square goodness of fit on the bins when every bin
  expects at least 5 rows (rare bins are pooled for categories), else Kolmogorov-Smirnov
  against the baseline's distribution (numbers in small windows).

A p-value alone fires on every large sample: with 100,000 rows a shift nobody would act on is
"significant". The effect size alone is noisy on small samples. Requiring both keeps a monitor
quiet on large samples of unchanged data and on small samples of anything. Statistics are scipy's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from meshserve.sidecars.drift.baseline import FeatureBaseline, category_of, is_missing, numeric_bins, numeric_values
from scipy import stats
from scipy.spatial.distance import jensenshannon

# Probability given to a bin the baseline never saw (and floor for live shares), so PSI stays
# finite: a category seen in 10% of live rows and never in training scores about 0.7.
EPSILON = 1e-4
MISSING = "(missing)"
UNSEEN = "(unseen)"
MIN_EXPECTED = 5.0  # the usual validity condition of the chi-square approximation


@dataclass
class Comparison:
    """One column of one window against its baseline."""

    rows: int
    test: str  # "chi-square", "kolmogorov-smirnov" or "none" (too few rows)
    p_value: float | None
    psi: float | None
    js_distance: float | None
    wasserstein_std: float | None = None  # numbers: Wasserstein distance / baseline std
    ks_statistic: float | None = None
    labels: list[str] = field(default_factory=list)  # the bins, for plots
    baseline_shares: list[float] = field(default_factory=list)
    live_shares: list[float] = field(default_factory=list)

    def drifted(self, psi_threshold: float, alpha: float, min_samples: int) -> bool:
        return (self.rows >= min_samples and self.psi is not None and self.p_value is not None
                and self.psi >= psi_threshold and self.p_value < alpha)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def psi(expected: np.ndarray, observed: np.ndarray) -> float:
    e, o = _smoothed(expected), _smoothed(observed)
    return float(np.sum((o - e) * np.log(o / e)))


def _smoothed(shares: np.ndarray) -> np.ndarray:
    shares = np.maximum(np.asarray(shares, dtype=float), EPSILON)
    return shares / shares.sum()


def chi_square_p(expected_shares: np.ndarray, counts: np.ndarray, pool: bool) -> float:
    """Goodness of fit of COUNTS to the baseline's shares; with POOL, bins expecting fewer than 5
    rows are merged first so the approximation holds."""
    total = counts.sum()
    expected = _smoothed(expected_shares) * total
    if pool:
        rare = expected < MIN_EXPECTED
        if rare.any() and (~rare).any():
            expected = np.append(expected[~rare], expected[rare].sum())
            counts = np.append(counts[~rare], counts[rare].sum())
    if len(counts) < 2:
        return 1.0
    return float(stats.chisquare(counts, expected).pvalue)


def _baseline_cdf(quantiles: Sequence[float]):
    """The baseline's distribution function, piecewise linear through its percentiles."""
    points = np.asarray(quantiles, dtype=float)
    levels = np.linspace(0.0, 1.0, len(points))
    unique, last = np.unique(points[::-1], return_index=True)  # ties: keep the highest level
    unique_levels = levels[::-1][last]
    return lambda x: np.interp(x, unique, unique_levels, left=0.0, right=1.0)


def compare(baseline: FeatureBaseline, values: Sequence[Any]) -> Comparison:
    if baseline.kind == "categorical":
        return _compare_categories(baseline, values)
    return _compare_numbers(baseline, values)


def _compare_numbers(baseline: FeatureBaseline, values: Sequence[Any]) -> Comparison:
    numbers, missing = numeric_values(values)
    rows = len(numbers) + missing
    present = 1.0 - baseline.missing_rate
    expected = np.append(np.asarray(baseline.frequencies) * present, baseline.missing_rate)
    counts = np.append(np.bincount(numeric_bins(baseline.edges, numbers), minlength=len(baseline.edges) + 1),
                       missing).astype(float)
    labels = _bin_labels(baseline.edges) + [MISSING]
    if rows == 0 or not baseline.frequencies:
        return Comparison(rows, "none", None, None, None, labels=labels, baseline_shares=expected.tolist(),
                          live_shares=[0.0] * len(labels))
    live = counts / rows
    result = Comparison(rows, "chi-square", None, psi(expected, live), float(jensenshannon(expected, live, base=2)),
                        labels=labels, baseline_shares=expected.tolist(), live_shares=live.tolist())
    if len(numbers) and baseline.std:
        result.wasserstein_std = float(stats.wasserstein_distance(numbers, baseline.quantiles) / baseline.std)
    occupied = expected[expected > 0]
    if rows * occupied.min() >= MIN_EXPECTED:
        result.p_value = chi_square_p(expected, counts, pool=False)
    elif len(numbers):
        # Too few rows for every bin: KS needs no bins. It sees only the numbers, so a window
        # whose change is in its missing values waits for enough rows for chi-square.
        ks = stats.kstest(numbers, _baseline_cdf(baseline.quantiles))
        result.test, result.p_value, result.ks_statistic = "kolmogorov-smirnov", float(ks.pvalue), float(ks.statistic)
    return result


def _compare_categories(baseline: FeatureBaseline, values: Sequence[Any]) -> Comparison:
    known = list(baseline.categories)
    index = {c: i for i, c in enumerate(known)}
    counts = np.zeros(len(known) + 2)
    for value in values:
        if is_missing(value):
            counts[-1] += 1
        else:
            counts[index.get(category_of(value), len(known))] += 1
    present = 1.0 - baseline.missing_rate
    expected = np.asarray([baseline.categories[c] * present for c in known] + [0.0, baseline.missing_rate])
    labels = known + [UNSEEN, MISSING]
    rows = int(counts.sum())
    if rows == 0:
        return Comparison(0, "none", None, None, None, labels=labels, baseline_shares=expected.tolist(),
                          live_shares=[0.0] * len(labels))
    live = counts / rows
    return Comparison(rows, "chi-square", chi_square_p(expected, counts, pool=True), psi(expected, live),
                      float(jensenshannon(expected, live, base=2)), labels=labels,
                      baseline_shares=expected.tolist(), live_shares=live.tolist())


def _bin_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all"]
    labels = [f"<{edges[0]:.4g}"]
    labels += [f"{a:.4g}-{b:.4g}" for a, b in pairwise(edges)]
    return labels + [f">={edges[-1]:.4g}"]
