"""The drift monitor's latest results as Prometheus series, served by the recorder that runs it.

    meshserve_drift_score{model,version,role,feature,window}       PSI of the column's latest check
    meshserve_drift_threshold{model,version,role,feature,window}   the model's psi_threshold
    meshserve_drift_alerting{model,version,role,feature,window}    1 while the column drifts
    meshserve_drift_last_check_timestamp_seconds{model}             when the model was last checked

compose/prometheus/drift-alerts.yml alerts on them. A collector reads the monitor's latest results
at each scrape, so a column the monitor no longer reports disappears instead of going stale.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import GaugeMetricFamily

LABELS = ["model", "version", "role", "feature", "window"]


class DriftCollector:
    def __init__(self, monitor: Any):
        self.monitor = monitor  # a DriftMonitor, or an object with .latest and .checked_at

    def collect(self):
        score = GaugeMetricFamily("meshserve_drift_score", "PSI of the column's latest drift check.", labels=LABELS)
        threshold = GaugeMetricFamily("meshserve_drift_threshold", "PSI from which the column has drifted.",
                                      labels=LABELS)
        alerting = GaugeMetricFamily("meshserve_drift_alerting", "1 while the column drifts (PSI at or above the "
                                     "threshold and the test's p-value below alpha).", labels=LABELS)
        checked = GaugeMetricFamily("meshserve_drift_last_check_timestamp_seconds", "When the monitor last "
                                    "checked the model (seconds since the epoch).", labels=["model"])
        for result in list(self.monitor.latest.values()):
            labels = [result.model, result.version, result.role, result.feature, result.window.kind]
            if result.comparison.psi is not None:
                score.add_metric(labels, result.comparison.psi)
            threshold.add_metric(labels, result.threshold)
            alerting.add_metric(labels, 1.0 if result.alerting else 0.0)
        for model, moment in dict(self.monitor.checked_at).items():
            checked.add_metric([model], moment)
        yield from (score, threshold, alerting, checked)


def register_drift_metrics(monitor: Any) -> None:
    """Add the monitor's series to this process's registry (the recorder serves it)."""
    from meshserve.observability.metrics import REGISTRY

    REGISTRY.register(DriftCollector(monitor))
