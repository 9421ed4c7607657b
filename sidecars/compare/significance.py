"""How sure a comparison is: 95% intervals and p-values for the few questions it asks.

Paired questions (a shadow and its primary on the same requests) use paired tests, which are
far more sensitive because each request is its own control: McNemar's exact test for right or
wrong, a paired t-test for errors. Unpaired questions (a canary and its primary on different
requests) use Fisher's exact test and Welch's t-test, with Newcombe's interval for a
difference of proportions. Statistics are scipy's; every function copes with empty or
constant samples, which live traffic produces.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

Z95 = 1.959963984540054


def _finite(value: float, default: float) -> float:
    return float(value) if value is not None and math.isfinite(value) else default


def wilson(successes: int, trials: int) -> tuple[float, float]:
    if trials == 0:
        return 0.0, 1.0
    interval = stats.binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)


def paired_proportions(first_right: np.ndarray, second_right: np.ndarray) -> dict:
    """Second minus first share of rows right, on the same rows: interval and McNemar's exact p."""
    n = len(first_right)
    only_first = int(np.sum(first_right & ~second_right))
    only_second = int(np.sum(second_right & ~first_right))
    difference = (only_second - only_first) / n if n else 0.0
    spread = math.sqrt(max(only_first + only_second - n * difference ** 2, 0.0)) / n if n else 1.0
    discordant = only_first + only_second
    pvalue = float(stats.binomtest(only_second, discordant).pvalue) if discordant else 1.0
    return {"difference": difference, "interval": [difference - Z95 * spread, difference + Z95 * spread],
            "pvalue": pvalue, "test": "McNemar exact"}


def two_proportions(first: tuple[int, int], second: tuple[int, int]) -> dict:
    """Second minus first proportion, (successes, trials) each, on different samples: Newcombe's
    interval and Fisher's exact p."""
    (x1, n1), (x2, n2) = first, second
    p1, p2 = (x1 / n1 if n1 else 0.0), (x2 / n2 if n2 else 0.0)
    (l1, u1), (l2, u2) = wilson(x1, n1), wilson(x2, n2)
    difference = p2 - p1
    low = difference - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = difference + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    pvalue = float(stats.fisher_exact([[x1, n1 - x1], [x2, n2 - x2]]).pvalue) if n1 and n2 else 1.0
    return {"difference": difference, "interval": [low, high], "pvalue": pvalue, "test": "Fisher exact"}


def paired_means(first: np.ndarray, second: np.ndarray) -> dict:
    """Mean of second minus first on the same rows, its t interval and the paired t-test's p."""
    differences = np.asarray(second, dtype=float) - np.asarray(first, dtype=float)
    mean = float(differences.mean()) if len(differences) else 0.0
    if len(differences) < 2:
        return {"difference": mean, "interval": None, "pvalue": 1.0, "test": "paired t"}
    if np.all(differences == differences[0]):  # every row moved by the same amount: nothing to doubt
        return {"difference": mean, "interval": [mean, mean], "pvalue": 1.0 if mean == 0 else 0.0,
                "test": "paired t"}
    result = stats.ttest_rel(second, first)
    interval = result.confidence_interval(0.95)
    return {"difference": mean, "interval": [float(interval.low), float(interval.high)],
            "pvalue": _finite(result.pvalue, 1.0), "test": "paired t"}


def two_means(first: np.ndarray, second: np.ndarray) -> dict:
    """Mean of second minus mean of first, on different samples: Welch's interval and t-test."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    difference = float(b.mean() - a.mean()) if len(a) and len(b) else 0.0
    if len(a) < 2 or len(b) < 2:
        return {"difference": difference, "interval": None, "pvalue": 1.0, "test": "Welch t"}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return {"difference": difference, "interval": [difference, difference],
                "pvalue": 1.0 if difference == 0 else 0.0, "test": "Welch t"}
    freedom = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, freedom)) * math.sqrt(va + vb)
    pvalue = _finite(stats.ttest_ind(b, a, equal_var=False).pvalue, 1.0)
    return {"difference": difference, "interval": [difference - half, difference + half], "pvalue": pvalue,
            "test": "Welch t"}


def label_frequencies_differ(first: list[str], second: list[str]) -> float:
    """Chi-square test's p that two samples of labels come from the same frequencies."""
    labels = sorted(set(first) | set(second))
    if len(labels) < 2 or not first or not second:
        return 1.0
    table = np.array([[first.count(label) for label in labels], [second.count(label) for label in labels]])
    return _finite(stats.chi2_contingency(table).pvalue, 1.0)
