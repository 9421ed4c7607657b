"""The monitor's state, kept in the records store beside the records, so it survives restarts and
every reader of the store (`meshserve drift`, the metrics exporter, the control API) sees it.

- `drift_status`: the latest check of each (model, version, role, tensor, feature, window_kind),
  with its score, threshold, p-value, rows and the histograms compared (`body`, JSON).
- `drift_alerts`: one row per alert from when it was raised to when it cleared (`cleared_at` is
  NULL while it is open).

Same SQL for SQLite and PostgreSQL, through the store's own connection.
"""

from __future__ import annotations

import json
from typing import Any

KEY = ("model", "version", "role", "tensor", "feature", "window_kind")

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS drift_status (
        model TEXT NOT NULL, version TEXT NOT NULL, role TEXT NOT NULL, tensor TEXT NOT NULL, feature TEXT NOT NULL,
        window_kind TEXT NOT NULL, checked_at DOUBLE PRECISION NOT NULL, row_count INTEGER NOT NULL,
        score DOUBLE PRECISION, threshold DOUBLE PRECISION NOT NULL, p_value DOUBLE PRECISION,
        alerting INTEGER NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (model, version, role, tensor, feature, window_kind))""",
    """CREATE TABLE IF NOT EXISTS drift_alerts (
        model TEXT NOT NULL, version TEXT NOT NULL, role TEXT NOT NULL, tensor TEXT NOT NULL, feature TEXT NOT NULL,
        window_kind TEXT NOT NULL, raised_at DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL,
        cleared_at DOUBLE PRECISION, score DOUBLE PRECISION NOT NULL, threshold DOUBLE PRECISION NOT NULL,
        p_value DOUBLE PRECISION, row_count INTEGER NOT NULL, message TEXT NOT NULL,
        PRIMARY KEY (model, version, role, tensor, feature, window_kind, raised_at))""",
]


class DriftTables:
    def __init__(self, store: Any):
        self.store = store
        with store._transaction() as cursor:
            for statement in SCHEMA:
                cursor.execute(statement)

    def _q(self, sql: str) -> str:
        return self.store._q(sql)

    def save_status(self, rows: list[dict[str, Any]]) -> None:
        columns = KEY + ("checked_at", "row_count", "score", "threshold", "p_value", "alerting", "body")
        update = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in KEY)
        sql = self._q(f"INSERT INTO drift_status ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                      f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET {update}")
        with self.store._transaction() as cursor:
            cursor.executemany(sql, [tuple(json.dumps(r[c]) if c == "body" else r[c] for c in columns) for r in rows])

    def status(self, model: str) -> list[dict[str, Any]]:
        rows = self.store._rows(self._q("SELECT * FROM drift_status WHERE model = ? ORDER BY version, role, tensor, "
                                        "feature, window_kind"), (model,))
        for row in rows:
            row["body"] = json.loads(row["body"])
        return rows

    def open_alerts(self, model: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM drift_alerts WHERE cleared_at IS NULL", ()
        if model is not None:
            sql, params = sql + " AND model = ?", (model,)
        return self.store._rows(self._q(sql + " ORDER BY raised_at"), params)

    def alerts(self, model: str, since: float | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM drift_alerts WHERE model = ?", [model]
        if since is not None:
            sql, params = sql + " AND (cleared_at IS NULL OR cleared_at >= ?)", params + [since]
        return self.store._rows(self._q(sql + " ORDER BY raised_at"), params)

    def raise_alert(self, alert: dict[str, Any]) -> None:
        columns = KEY + ("raised_at", "last_seen", "score", "threshold", "p_value", "row_count", "message")
        with self.store._transaction() as cursor:
            cursor.execute(self._q(f"INSERT INTO drift_alerts ({', '.join(columns)}) "
                                   f"VALUES ({', '.join('?' * len(columns))})"), tuple(alert[c] for c in columns))

    def refresh_alert(self, alert: dict[str, Any], now: float, score: float, p_value: float | None, rows: int) -> None:
        with self.store._transaction() as cursor:
            cursor.execute(self._q("UPDATE drift_alerts SET last_seen = ?, score = ?, p_value = ?, row_count = ? "
                                   f"WHERE {' AND '.join(f'{c} = ?' for c in KEY)} AND raised_at = ?"),
                           (now, score, p_value, rows, *(alert[c] for c in KEY), alert["raised_at"]))

    def clear_alert(self, alert: dict[str, Any], now: float) -> None:
        with self.store._transaction() as cursor:
            cursor.execute(self._q(f"UPDATE drift_alerts SET cleared_at = ? WHERE {' AND '.join(f'{c} = ?' for c in KEY)}"
                                   " AND raised_at = ?"), (now, *(alert[c] for c in KEY), alert["raised_at"]))


def open_alert_messages(store: Any, model: str, version: str) -> list[str]:
    """The open drift alerts naming VERSION of MODEL, as text: what a rollout holds a candidate for."""
    return [a["message"] for a in DriftTables(store).open_alerts(model) if a["version"] == version]
