"""Per-feature statistics of the inputs an adapter serves, by model, version, role and feature.

For each feature named by the signature (the columns of an input's `features`, or an input
holding one value per row, named after the input): how many values arrived, how many were
missing (NaN, or an empty BYTES value), a histogram of numeric values, counts per category
of BYTES values, and how many fell outside the limits model.yaml declares (`limits`).

Off the request's path: the observer only appends the decoded inputs to a bounded queue
(a full queue drops them and counts it). A background thread folds the queue into the
statistics with numpy, a whole batch at a time, every MESHSERVE_FEATURE_STATISTICS_INTERVAL_S,
and a Prometheus scrape folds what is left first, so counts are current when read.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from meshserve.core.model_package import ModelPackage, TensorSpec
from meshserve.core.observers import InferenceEvent

log = logging.getLogger("meshserve.feature_stats")

MAX_PENDING = 10_000  # inferences waiting to be folded; beyond this they are dropped and counted
MAX_CATEGORIES = 50  # distinct undeclared categories kept per feature; later ones count as OTHER
OTHER = "__other__"
# Buckets for a feature without a declared range: zero and powers of ten either side.
DEFAULT_EDGES = tuple(sorted({0.0, *(s * 10.0 ** e for s in (-1, 1) for e in range(-3, 6))}))
RANGE_BINS = 10  # a declared range [lo, hi] is cut into this many equal buckets

DROPPED = Counter("meshserve_feature_events_dropped", "Inferences left out of the feature statistics "
                  "because the adapter could not fold them fast enough.", ("model", "version"))
LABELS = ["model", "version", "role", "input", "feature"]


def describable(spec: TensorSpec) -> list[str]:
    """The features of an input that get statistics: its named columns, or itself when it holds
    one value per row; images and sequences have none."""
    if spec.features:
        return list(spec.features)
    if len(spec.shape) == 1 or (len(spec.shape) == 2 and spec.shape[1] == 1):
        return [spec.name]
    return []


@dataclass
class NumericFeature:
    edges: np.ndarray
    lo: float | None = None
    hi: float | None = None
    count: int = 0
    missing: int = 0
    out_of_range: int = 0
    total: float = 0.0
    buckets: np.ndarray = field(default=None)  # per bucket (not cumulative); the last is +Inf

    def __post_init__(self):
        self.buckets = np.zeros(len(self.edges) + 1, dtype=np.int64)

    def fold(self, values: np.ndarray) -> None:
        values = values.astype(np.float64, copy=False)
        self.count += values.size
        nan = np.isnan(values)
        missing = int(nan.sum())
        self.missing += missing
        if missing:
            values = values[~nan]
        # Prometheus buckets hold values <= their bound: the first edge >= the value.
        self.buckets += np.bincount(np.searchsorted(self.edges, values, side="left"), minlength=len(self.buckets))
        self.total += float(values.sum())
        if self.lo is not None:
            self.out_of_range += int(((values < self.lo) | (values > self.hi)).sum())


@dataclass
class CategoricalFeature:
    declared: list[str] | None = None
    count: int = 0
    missing: int = 0
    out_of_range: int = 0
    categories: dict[str, int] = field(default_factory=dict)

    def fold(self, values: np.ndarray) -> None:
        self.count += values.size
        names, counts = np.unique(np.array([_text(v) for v in values.ravel()], dtype=object), return_counts=True)
        allowed = set(self.declared) if self.declared is not None else None
        for name, n in zip(names, counts):
            n = int(n)
            if name == "":
                self.missing += n
                continue
            if allowed is not None and name not in allowed:
                self.out_of_range += n
                name = OTHER
            elif allowed is None and name not in self.categories and len(self.categories) >= MAX_CATEGORIES:
                name = OTHER
            self.categories[name] = self.categories.get(name, 0) + n


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)


def _new_feature(spec: TensorSpec, feature: str):
    limit = (spec.limits or {}).get(feature)
    if spec.datatype == "BYTES":
        return CategoricalFeature(declared=list(limit.categories) if limit and limit.categories else None)
    if limit is not None and limit.range is not None:
        lo, hi = limit.range
        return NumericFeature(np.linspace(lo, hi, RANGE_BINS + 1), lo, hi)
    return NumericFeature(np.array(DEFAULT_EDGES))


class FeatureStatistics:
    """Observer (at the adapter) and Prometheus collector of per-feature input statistics."""

    before_answer = False

    def __init__(self, package: ModelPackage, interval_s: float = 1.0):
        self.model, self.version = package.name, package.version
        self.inputs = {spec.name: (spec, names) for spec in package.manifest.signature.inputs
                       if (names := describable(spec))}
        self._pending: deque[tuple[str, dict[str, np.ndarray]]] = deque()
        self._features: dict[tuple[str, str, str], NumericFeature | CategoricalFeature] = {}
        self._lock = threading.Lock()  # one folder at a time: the background thread or a scrape
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fold_periodically, name="meshserve-feature-stats", daemon=True)

    def start(self) -> FeatureStatistics:
        REGISTRY.register(self)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    # -- the request side: O(1), no numpy work
    def observe(self, event: InferenceEvent) -> None:
        if event.inputs is None or not self.inputs or event.code.name != "OK":
            return
        if len(self._pending) >= MAX_PENDING:
            DROPPED.labels(self.model, self.version).inc()
            return
        self._pending.append((event.call.role, event.inputs))

    # -- the background side
    def _fold_periodically(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.fold()
            except Exception:
                log.exception("folding feature statistics failed")

    def fold(self) -> None:
        """Fold every queued inference into the statistics, one concatenated batch per role and input."""
        with self._lock:
            taken = []
            while self._pending:
                taken.append(self._pending.popleft())
            by_role: dict[str, list[dict[str, np.ndarray]]] = {}
            for role, inputs in taken:
                by_role.setdefault(role, []).append(inputs)
            for role, batch in by_role.items():
                for name, (spec, names) in self.inputs.items():
                    arrays = [inputs[name] for inputs in batch if name in inputs]
                    if arrays:
                        self._fold_input(role, spec, names, arrays)

    def _fold_input(self, role: str, spec: TensorSpec, names: list[str], arrays: list[np.ndarray]) -> None:
        try:
            columns = np.concatenate([a.reshape(-1, len(names)) for a in arrays])
        except ValueError:  # shapes that do not line up: fold them one by one
            if len(arrays) > 1:
                for array in arrays:
                    self._fold_input(role, spec, names, [array])
            return
        for i, feature in enumerate(names):
            key = (role, spec.name, feature)
            stats = self._features.get(key)
            if stats is None:
                stats = self._features[key] = _new_feature(spec, feature)
            stats.fold(columns[:, i])

    # -- the Prometheus side
    def collect(self):
        self.fold()
        base = [self.model, self.version]
        values = CounterMetricFamily("meshserve_feature_values", "Values of an input feature received.", labels=LABELS)
        missing = CounterMetricFamily("meshserve_feature_missing",
                                      "Values of a feature that were missing: NaN, or an empty BYTES value.",
                                      labels=LABELS)
        out = CounterMetricFamily("meshserve_feature_out_of_range",
                                  "Values outside the feature's declared range or categories (model.yaml limits).",
                                  labels=LABELS)
        histogram = HistogramMetricFamily("meshserve_feature_value", "Distribution of a numeric feature's values.",
                                          labels=LABELS)
        categories = CounterMetricFamily("meshserve_feature_category",
                                         "Values of a BYTES feature per category (__other__: undeclared or beyond "
                                         f"the first {MAX_CATEGORIES}).", labels=[*LABELS, "category"])
        with self._lock:
            for (role, name, feature), stats in sorted(self._features.items()):
                labels = [*base, role, name, feature]
                values.add_metric(labels, stats.count)
                missing.add_metric(labels, stats.missing)
                out.add_metric(labels, stats.out_of_range)
                if isinstance(stats, NumericFeature):
                    cumulative = np.cumsum(stats.buckets)
                    bounds = [*(_bound(e) for e in stats.edges), "+Inf"]
                    histogram.add_metric(labels, list(zip(bounds, (int(c) for c in cumulative))), stats.total)
                else:
                    for category, n in sorted(stats.categories.items()):
                        categories.add_metric([*labels, category], n)
        yield from (values, missing, out, histogram, categories)


def _bound(edge: float) -> str:
    return repr(float(edge))
