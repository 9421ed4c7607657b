"""The monitor's state, kept in the records store beside the records, so it survives restarts and
every reader of the store (`meshserve drift`, the metrics exporter, the control API, the console)
sees it.

- `drift_status`: the latest check of each (model, version, role, tensor, feature, window_kind),
  with its score, threshold, p-value, rows and the histograms compared (`body`, JSON).
- `drift_alerts`: one row per alert from when it was raised to when it cleared (`cleared_at` is
  NULL while it is open).

The store owns the tables and their SQL (sidecars/records/store.py, the same for SQLite and
PostgreSQL); this is the monitor's view of them.
"""

from __future__ import annotations

from typing import Any

from meshserve.sidecars.records.store import DRIFT_KEY as KEY

__all__ = ["KEY", "DriftTables", "open_alert_messages"]


class DriftTables:
    def __init__(self, store: Any):
        self.store = store

    def save_status(self, rows: list[dict[str, Any]]) -> None:
        self.store.save_drift_status(rows)

    def status(self, model: str) -> list[dict[str, Any]]:
        return self.store.drift_status(model)

    def open_alerts(self, model: str | None = None) -> list[dict[str, Any]]:
        return self.store.drift_alerts(model, open_only=True)

    def alerts(self, model: str, since: float | None = None) -> list[dict[str, Any]]:
        return self.store.drift_alerts(model, since=since)

    def raise_alert(self, alert: dict[str, Any]) -> None:
        self.store.raise_drift_alert(alert)

    def refresh_alert(self, alert: dict[str, Any], now: float, score: float, p_value: float | None, rows: int) -> None:
        self.store.refresh_drift_alert(alert, now, score, p_value, rows)

    def clear_alert(self, alert: dict[str, Any], now: float) -> None:
        self.store.clear_drift_alert(alert, now)


def open_alert_messages(store: Any, model: str, version: str) -> list[str]:
    """The open drift alerts naming VERSION of MODEL, as text: what a rollout holds a candidate for."""
    return [a["message"] for a in DriftTables(store).open_alerts(model) if a["version"] == version]
