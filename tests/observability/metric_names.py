"""The series meshserve's code serves, and the metrics a PromQL expression reads: so the tests of
the dashboards and alerting rules can tell a typo in a metric name from a series that is merely
empty until something happens (a lost record, a drift check, a reported outcome)."""

from __future__ import annotations

import re
from types import SimpleNamespace

from conftest import EXAMPLES

# Series Prometheus makes itself, not any process of the mesh.
PROMETHEUS_OWN = {"up", "ALERTS"}
FUNCTIONS = {"sum", "max", "min", "count", "avg", "rate", "increase", "histogram_quantile", "sort_desc", "vector",
             "clamp_min", "time", "or", "and", "unless", "offset", "bool"}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "unknown": ("",)}


def served_series() -> set[str]:
    """Every series name meshserve's processes can serve, from the metric objects themselves."""
    import meshserve.adapters.triton.tap  # noqa: F401  (registers its counters)
    import meshserve.observability.judging_metrics  # noqa: F401
    import meshserve.observability.metrics  # noqa: F401
    import meshserve.sidecars.records.losses  # noqa: F401
    from prometheus_client import REGISTRY

    from meshserve.core.model_package import load_package
    from meshserve.observability.feature_stats import FeatureStatistics
    from meshserve.sidecars.drift.drift_metrics import DriftCollector

    families = [*REGISTRY.collect(), *DriftCollector(SimpleNamespace(latest={}, checked_at={})).collect(),
                *FeatureStatistics(load_package(EXAMPLES / "breast_cancer")).collect()]
    return {f.name + suffix for f in families for suffix in _SUFFIXES.get(f.type, ("",))}


def metrics_read_by(expr: str) -> set[str]:
    """The metric names EXPR selects: what is left once strings, label matchers, ranges and
    grouping clauses are taken out, less PromQL's own words."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(?:by|on|ignoring|without|group_left|group_right)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r"\b(?:group_left|group_right)\b", " ", bare)
    return {word for word in re.findall(r"(?<![\w.])[A-Za-z_:][\w:]*", bare) if word not in FUNCTIONS}
