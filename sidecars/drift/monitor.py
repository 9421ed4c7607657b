"""The drift monitor: each model version and role's recent records against its baseline.

`check_model` judges every monitored column over both windows and returns the results; the
`DriftMonitor` runs it periodically (in a thread of the recorder, `MonitorThread`), keeps the latest results and the alerts
in the store (drift_tables.py) and writes one log line when an alert is raised or clears, so
a person or a log shipper sees it without asking.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from meshserve.sidecars.drift.baseline import Baseline, read_baseline
from meshserve.sidecars.drift.drift_tables import KEY, DriftTables
from meshserve.sidecars.drift.live_data import ROLES, Window, windows
from meshserve.sidecars.drift.plan import ModelPlan
from meshserve.sidecars.drift.statistics import Comparison, compare

log = logging.getLogger("meshserve.drift")


@dataclass
class FeatureResult:
    model: str
    version: str
    role: str
    io: str  # "input" or "output"
    tensor: str
    feature: str
    window: Window
    comparison: Comparison
    threshold: float
    alerting: bool

    @property
    def key(self) -> tuple:
        return (self.model, self.version, self.role, self.tensor, self.feature, self.window.kind)

    def window_text(self) -> str:
        if self.window.start is None:
            return f"{self.window.label} (no rows)"
        span = " to ".join(_clock(t) for t in (self.window.start, self.window.end))
        return f"{self.window.label}, {span} UTC"

    def message(self) -> str:
        c = self.comparison
        p = f"{c.p_value:.3g}" if c.p_value is not None else "-"
        score = f"{c.psi:.4f}" if c.psi is not None else "-"
        return (f"model={self.model} version={self.version} role={self.role} feature=\"{self.feature}\" "
                f"({self.io} {self.tensor}) score=PSI {score} threshold={self.threshold:g} "
                f"test={c.test} p={p} window=\"{self.window_text()}\" rows={c.rows}")

    def status_row(self, now: float) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "role": self.role, "tensor": self.tensor,
                "feature": self.feature, "window_kind": self.window.kind, "checked_at": now,
                "row_count": self.comparison.rows, "score": self.comparison.psi, "threshold": self.threshold,
                "p_value": self.comparison.p_value, "alerting": int(self.alerting),
                "body": {"io": self.io, "window": self.window_text(), "window_label": self.window.label,
                         "window_size": self.window.size,
                         "message": self.message(),
                         **self.comparison.as_dict()}}


def _clock(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def check_model(store: Any, plan: ModelPlan, baselines: dict[str, Baseline], now: float,
                max_rows: int) -> list[FeatureResult]:
    policy = plan.policy
    results: list[FeatureResult] = []
    for version, baseline in sorted(baselines.items()):
        judged = [f for f in baseline.features if f.column not in policy.ignore and f.tensor not in policy.ignore]
        wanted = {(f.role, f.tensor) for f in judged}
        for role in ROLES:
            by_count, by_time = windows(store, plan.model, version, role, wanted, policy.window_rows,
                                        policy.window_s, max_rows, now)
            if not by_count.rows:
                continue  # this version does not serve in this role
            for window in (by_count, by_time):
                for feature in judged:
                    comparison = compare(feature, window.column(feature.role, feature.tensor, feature.column))
                    drifted = comparison.drifted(policy.psi_threshold, policy.alpha, policy.min_samples)
                    results.append(FeatureResult(plan.model, version, role, feature.role, feature.tensor,
                                                 feature.column, window, comparison, policy.psi_threshold, drifted))
    return results


class DriftMonitor:
    """Periodic checks of every planned model, run from the recorder's loop."""

    def __init__(self, store: Any, plans: list[ModelPlan], every_s: float, max_rows: int):
        self.store = store
        self.plans = plans
        self.every_s = every_s
        self.max_rows = max_rows
        self.tables = DriftTables(store)
        self.baselines = {p.model: {v: read_baseline(Path(path)) for v, path in p.baselines.items()} for p in plans}
        self._next = 0.0
        self.latest: dict[tuple, FeatureResult] = {}  # the last result of each column and window (for metrics)
        self.checked_at: dict[str, float] = {}

    def maybe_check(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if now < self._next:
            return
        self._next = now + self.every_s
        for plan in self.plans:
            try:
                self.check(plan, now)
            except Exception as exc:  # noqa: BLE001 - a check must never stop the recorder from recording
                log.error("drift check of %s failed: %s: %s", plan.model, type(exc).__name__, exc)

    def check(self, plan: ModelPlan, now: float) -> list[FeatureResult]:
        results = check_model(self.store, plan, self.baselines[plan.model], now, self.max_rows)
        self.checked_at[plan.model] = now
        # Kept for the metrics until the next check: without the windows' rows (tens of MiB).
        self.latest = {k: r for k, r in self.latest.items() if k[0] != plan.model} | {
            r.key: replace(r, window=r.window.described()) for r in results}
        if not results:
            return results
        self.tables.save_status([r.status_row(now) for r in results])
        open_alerts = {tuple(a[c] for c in KEY): a for a in self.tables.open_alerts(plan.model)}
        for result in results:
            alert = open_alerts.get(result.key)
            c = result.comparison
            if result.alerting and alert is None:
                message = result.message()
                self.tables.raise_alert({**dict(zip(KEY, result.key)), "raised_at": now, "last_seen": now,
                                         "score": c.psi, "threshold": result.threshold, "p_value": c.p_value,
                                         "row_count": c.rows, "message": message})
                log.warning("drift alert: %s", message)
            elif result.alerting:
                self.tables.refresh_alert(alert, now, c.psi, c.p_value, c.rows)
            elif alert is not None and c.rows >= plan.policy.min_samples:
                self.tables.clear_alert(alert, now)
                log.info("drift cleared: %s", result.message())
        return results


class MonitorThread:
    """The monitor in a thread of the recorder, with its own store connection: a check (seconds on a
    large time window) never delays moving records, and a store that is down is retried."""

    RETRY_S = 5.0

    def __init__(self, store_url: str, plan_path: Path):
        self.store_url, self.plan_path = store_url, plan_path
        self.monitor: DriftMonitor | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drift-monitor", daemon=True)

    @classmethod
    def start(cls, store_url: str, plan_path: Path) -> MonitorThread:
        thread = cls(store_url, plan_path)
        thread._thread.start()
        return thread

    def _open(self) -> DriftMonitor:
        monitor = self._monitor()
        from meshserve.core.settings import get_settings

        if get_settings().metrics_listen:  # the recorder serves this process's metrics
            from meshserve.sidecars.drift.drift_metrics import register_drift_metrics

            register_drift_metrics(monitor)
        return monitor

    def _monitor(self) -> DriftMonitor:
        from meshserve.sidecars.drift.plan import read_plan
        from meshserve.sidecars.records.store import open_store

        from meshserve.core.settings import get_settings

        settings = get_settings()
        return DriftMonitor(open_store(self.store_url), read_plan(self.plan_path), settings.drift_check_every_s,
                            settings.drift_max_window_rows)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.monitor is None:
                try:
                    self.monitor = self._open()
                except Exception as exc:  # noqa: BLE001 - recording goes on; drift checks wait for the store
                    log.error("drift monitor cannot start: %s: %s; retrying in %g s", type(exc).__name__, exc,
                              self.RETRY_S)
                    self._stop.wait(self.RETRY_S)
                    continue
            self.monitor.maybe_check()
            self._stop.wait(min(1.0, self.monitor.every_s))

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self.monitor is not None and not self._thread.is_alive():
            self.monitor.store.close()
