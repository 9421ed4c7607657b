"""Metrics that judge versions on live data: shadow agreement with the version that answered,
difference quantiles, pair counts, and live quality on reported outcomes.

The router computes them from the records store every `every_s` seconds over the last
`window_s` (what `meshserve compare` and `meshserve quality` report for the same window), so
Prometheus and alerting rules see the same figures as the reports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import Gauge

from meshserve.core.background_priority import lower_this_thread
from meshserve.core.settings import get_settings

log = logging.getLogger("meshserve.metrics")

PAIR_LABELS = ("model", "version", "primary_version")
SHADOW_PAIRS = Gauge("meshserve_shadow_pairs", "Requests answered by both a shadow and the version it copied, "
                     "in the judging window.", PAIR_LABELS)
SHADOW_AGREEMENT = Gauge("meshserve_shadow_agreement", "Share of a class output's rows where the shadow agrees with "
                         "the version that answered.", (*PAIR_LABELS, "output"))
SHADOW_DIFFERENCE = Gauge("meshserve_shadow_abs_difference", "Quantiles of |shadow - answer| of a numeric output.",
                          (*PAIR_LABELS, "output", "quantile"))
QUALITY_LABELS = ("model", "version", "role", "output")
QUALITY_OUTCOMES = Gauge("meshserve_quality_outcomes", "Recorded predictions with a reported outcome.", QUALITY_LABELS)
QUALITY_ACCURACY = Gauge("meshserve_quality_accuracy", "Accuracy of a class output on reported outcomes.",
                         QUALITY_LABELS)
QUALITY_MAE = Gauge("meshserve_quality_mae", "Mean absolute error of a numeric output on reported outcomes.",
                    QUALITY_LABELS)
QUALITY_ALERTING = Gauge("meshserve_quality_alerting", "1 while a version's live quality is beyond the threshold "
                         "meshserve.yaml sets (models.NAME.quality), else 0.", QUALITY_LABELS)


def publish(model: str, comparison: dict, report: dict) -> None:
    for entry in comparison.get("shadows", []):
        pair = (model, entry["version"], entry["primary_version"])
        SHADOW_PAIRS.labels(*pair).set(entry["pairs"])
        for output, figures in entry["outputs"].items():
            if figures.get("agreement") is not None:
                SHADOW_AGREEMENT.labels(*pair, output).set(figures["agreement"])
            for quantile, value in (figures.get("absolute_difference") or {}).items():
                SHADOW_DIFFERENCE.labels(*pair, output, quantile).set(value)
    for group in report.get("groups", []):
        for output, figures in group["outputs"].items():
            labels = (model, group["version"], group["role"], output)
            QUALITY_OUTCOMES.labels(*labels).set(figures["n"])
            if "accuracy" in figures:
                QUALITY_ACCURACY.labels(*labels).set(figures["accuracy"])
            if "mae" in figures:
                QUALITY_MAE.labels(*labels).set(figures["mae"])


class QualityAlerts:
    """Alerts on live quality against the spec's thresholds: a log line when one is raised or
    cleared, and the meshserve_quality_alerting gauge while it holds."""

    def __init__(self, thresholds: dict):
        self.thresholds = thresholds  # model -> QualitySpec
        self.open: set[tuple[str, str, str, str]] = set()

    def judge(self, model: str, report: dict) -> list[str]:
        spec = self.thresholds.get(model)
        if spec is None or (spec.min_accuracy is None and spec.max_mae is None):
            return []
        from meshserve.sidecars.records.api import alerts_for

        raised = []
        for group in report.get("groups", []):
            for output in group["outputs"]:
                labels = (model, group["version"], group["role"], output)
                single = {"groups": [{**group, "outputs": {output: group["outputs"][output]}}]}
                said = alerts_for(single, spec.min_accuracy, spec.max_mae, spec.min_outcomes)
                QUALITY_ALERTING.labels(*labels).set(1 if said else 0)
                if said and labels not in self.open:
                    self.open.add(labels)
                    log.warning("quality alert: model %s %s", model, said[0])
                    raised.append(said[0])
                elif not said and labels in self.open:
                    self.open.discard(labels)
                    log.warning("quality alert cleared: model %s version %s (%s) output %s", *labels)
        return raised


def _judges():
    from meshserve.sidecars.compare.api import compare
    from meshserve.sidecars.records.api import quality
    return compare, quality


async def _in(pool: ThreadPoolExecutor, function, *args):
    return await asyncio.get_running_loop().run_in_executor(pool, function, *args)


async def keep_publishing(store_opener, models: Callable[[], dict[str, int]], window_s: float = 3600.0,
                          every_s: float = 15.0, thresholds: dict | None = None) -> None:
    """Recompute the judging metrics until cancelled; a store that is down is tried again. MODELS gives,
    at each pass, every model served and how many versions it runs: one version has no shadow or
    canary to compare, so only its quality is computed. THRESHOLDS (model -> QualitySpec) raise
    quality alerts over each spec's own window."""
    # In a thread of their own at background priority (core/background_priority.py): the passes
    # take the CPU that serving leaves, and scipy's and scikit-learn's imports (a second of CPU)
    # never hold up the router's loop.
    judges = ThreadPoolExecutor(1, thread_name_prefix="judges", initializer=lower_this_thread)
    try:
        await _publish_forever(judges, store_opener, models, window_s, every_s, thresholds)
    finally:
        judges.shutdown(wait=False, cancel_futures=True)


async def _publish_forever(judges: ThreadPoolExecutor, store_opener, models: Callable[[], dict[str, int]],
                           window_s: float, every_s: float, thresholds: dict | None) -> None:
    compare, quality = await _in(judges, _judges)
    alerts = QualityAlerts(thresholds or {})
    limit = get_settings().judging_max_records
    store = None
    while True:
        try:
            if store is None:
                store = await _in(judges, store_opener)
            for model, versions in sorted(models().items()):
                spec = alerts.thresholds.get(model)
                since = time.time() - (spec.window_s if spec is not None else window_s)
                comparison = await _in(judges, compare, store, model, since, None, limit) if versions > 1 \
                    else {"shadows": [], "canaries": []}
                report = await _in(judges, lambda: quality(store.joined(model, since=since)))
                publish(model, comparison, report)
                alerts.judge(model, report)
        except Exception as exc:
            log.warning("judging metrics not updated (%s: %s); trying again", type(exc).__name__, exc)
            store = None
        await asyncio.sleep(every_s)
