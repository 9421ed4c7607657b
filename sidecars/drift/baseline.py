"""A package's baseline: what its training data looked like, feature by feature, for drift tests.

Kept in `baseline.json` in the package (model.yaml names it with `baseline: baseline.json`), so
model.yaml stays short and readable. Per column of every input and output (columns are named as
`meshserve records export` names them, see columns.py):

- numeric: interior bin edges at the training data's deciles, the share of rows in each bin,
  101 quantiles (the distribution itself, for Kolmogorov-Smirnov and Wasserstein), mean and std;
- categorical (BYTES, BOOL, integers with few values): the share of each category;
- both: the number of rows and the share of missing values (NaN, null, empty text).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from meshserve.sidecars.drift.columns import CATEGORICAL_TYPES, INTEGER_TYPES, MAX_INTEGER_CATEGORIES
from pydantic import Field

from meshserve.core.datatypes import NUMPY_DTYPES
from meshserve.core.strict_model import StrictModel

BASELINE_FILE = "baseline.json"
NUMERIC_BINS = 10
# Beyond this many categories the rarest are pooled into OTHER: a baseline of a free-text column
# would otherwise be as large as the training data.
MAX_CATEGORIES = 50
OTHER = "(other)"
QUANTILES = 101


class FeatureBaseline(StrictModel):
    role: Literal["input", "output"]
    tensor: str
    column: str
    datatype: str
    kind: Literal["numeric", "categorical"]
    count: int = Field(ge=0, description="Rows of training data seen.")
    missing_rate: float = Field(ge=0.0, le=1.0)
    edges: list[float] = Field(default_factory=list, description="Interior bin edges (numeric), increasing.")
    frequencies: list[float] = Field(default_factory=list, description="Share of non-missing rows per bin (numeric).")
    quantiles: list[float] = Field(default_factory=list, description="0th..100th percentiles (numeric).")
    mean: float | None = None
    std: float | None = None
    categories: dict[str, float] = Field(default_factory=dict, description="Share of non-missing rows per category.")


class Baseline(StrictModel):
    format: int = 1
    source: str = Field(default="", description="Where the training data came from (a file name).")
    rows: int = 0
    features: list[FeatureBaseline]

    def feature(self, tensor: str, column: str) -> FeatureBaseline | None:
        return next((f for f in self.features if f.tensor == tensor and f.column == column), None)


def is_missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def category_of(value: Any) -> str:
    """The text a category is known by, the same for training data and records (1, 1.0, True -> '1', '1', 'true')."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def numeric_values(values: Sequence[Any]) -> tuple[np.ndarray, int]:
    """(the finite numbers, how many were missing)."""
    try:  # numbers and None (which becomes NaN): at numpy's speed
        array = np.asarray(values, dtype=float)
        if array.ndim == 1:
            finite = np.isfinite(array)
            return array[finite], int(len(array) - finite.sum())
    except (TypeError, ValueError):
        pass
    kept, missing = [], 0
    for value in values:
        if is_missing(value) or isinstance(value, (str, dict, list)):
            missing += 1
            continue
        number = float(value)
        if math.isfinite(number):
            kept.append(number)
        else:
            missing += 1
    return np.asarray(kept, dtype=float), missing


def numeric_bins(edges: Sequence[float], values: np.ndarray) -> np.ndarray:
    """Bin index of each value: 0 below the first edge ... len(edges) at or above the last."""
    return np.searchsorted(np.asarray(edges, dtype=float), values, side="right")


def is_categorical(datatype: str, values: Sequence[Any]) -> bool:
    if datatype in CATEGORICAL_TYPES:
        return True
    if datatype in INTEGER_TYPES:
        return len({category_of(v) for v in values if not is_missing(v)}) <= MAX_INTEGER_CATEGORIES
    return False


def feature_baseline(role: str, tensor: str, column: str, datatype: str, values: Sequence[Any]) -> FeatureBaseline:
    count = len(values)
    common = {"role": role, "tensor": tensor, "column": column, "datatype": datatype, "count": count}
    if is_categorical(datatype, values):
        present = [category_of(v) for v in values if not is_missing(v)]
        counts = Counter(present).most_common()
        kept = dict(counts[:MAX_CATEGORIES])
        if len(counts) > MAX_CATEGORIES:
            kept[OTHER] = sum(n for _, n in counts[MAX_CATEGORIES:])
        total = len(present) or 1
        return FeatureBaseline(kind="categorical", missing_rate=(count - len(present)) / (count or 1),
                               categories={k: n / total for k, n in kept.items()}, **common)
    numbers, missing = numeric_values(values)
    if datatype in ("FP16", "FP32"):
        # Live values arrive in the tensor's precision: 5.1 becomes 5.0999999; bin the training
        # data in that precision too, or values on an edge would land in the neighbouring bin.
        numbers = numbers.astype(NUMPY_DTYPES[datatype]).astype(float)
    if not len(numbers):
        return FeatureBaseline(kind="numeric", missing_rate=1.0 if count else 0.0, **common)
    edges = np.unique(np.quantile(numbers, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1]))
    frequencies = np.bincount(numeric_bins(edges, numbers), minlength=len(edges) + 1) / len(numbers)
    return FeatureBaseline(kind="numeric", missing_rate=missing / count, edges=edges.tolist(),
                           frequencies=frequencies.tolist(),
                           quantiles=np.quantile(numbers, np.linspace(0, 1, QUANTILES)).tolist(),
                           mean=float(numbers.mean()), std=float(numbers.std()), **common)


def compute_baseline(columns: Iterable[tuple[str, str, str, str, Sequence[Any]]], source: str = "") -> Baseline:
    """From (role, tensor, column, datatype, values) for each column of the training data."""
    features = [feature_baseline(*column) for column in columns]
    # No creation time: the same data gives the same file, so a package's digest is reproducible.
    return Baseline(source=source, rows=max((f.count for f in features), default=0), features=features)


def write_baseline(baseline: Baseline, path: Path) -> None:
    # One line per column: a diff of two baselines shows which columns changed.
    head = json.dumps(baseline.model_dump(exclude={"features"}))[:-1]
    lines = ",\n".join(json.dumps(f.model_dump(), separators=(",", ":")) for f in baseline.features)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f'{head}, "features": [\n{lines}\n]}}\n')
    tmp.replace(path)


def read_baseline(path: Path) -> Baseline:
    return Baseline.model_validate_json(Path(path).read_text())
