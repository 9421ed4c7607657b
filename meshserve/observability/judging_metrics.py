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

from prometheus_client import Gauge

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


async def keep_publishing(store_opener, models: list[str], window_s: float = 3600.0, every_s: float = 15.0) -> None:
    """Recompute the judging metrics for MODELS until cancelled; a store that is down is tried again."""
    from meshserve.sidecars.compare.comparison import compare
    from meshserve.sidecars.records.quality import quality

    store = None
    while True:
        try:
            if store is None:
                store = await asyncio.to_thread(store_opener)
            since = time.time() - window_s
            for model in models:
                comparison = await asyncio.to_thread(compare, store, model, since)
                report = await asyncio.to_thread(lambda: quality(store.joined(model, since=since)))
                publish(model, comparison, report)
        except Exception as exc:
            log.warning("judging metrics not updated (%s: %s); trying again", type(exc).__name__, exc)
            store = None
        await asyncio.sleep(every_s)
