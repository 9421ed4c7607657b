"""The drift report: per version and role, each column's score over both windows, as text and as an
HTML page with the baseline's histogram beside the live ones."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from meshserve.sidecars.reports import html

HEADERS = ["feature", "of", "window", "rows", "test", "p-value", "PSI", "JS distance", "Wasserstein/std", "status"]
TEXT_ROWS = 10  # columns per window in the text report unless --all


def _number(value: float | None, digits: str = ".4f") -> str:
    return "-" if value is None else format(value, digits)


def _status(row: dict[str, Any], min_samples: int | None) -> str:
    if row["alerting"]:
        return "DRIFT"
    if min_samples is not None and row["row_count"] < min_samples:
        return "too few rows"
    return "ok"


def _line(row: dict[str, Any], min_samples: int | None) -> list[str]:
    body = row["body"]
    return [row["feature"], f"{body['io']} {row['tensor']}", _short(body), f"{row['row_count']:,}", body["test"],
            _number(row["p_value"], ".3g"), _number(row["score"]), _number(body.get("js_distance")),
            _number(body.get("wasserstein_std"), ".3f"), _status(row, min_samples)]


def _short(body: dict[str, Any]) -> str:
    """'newest 1,000 rows' rather than 'newest 1,000 rows, 2026-12-01 10:00:00 to ... UTC'."""
    return body.get("window_label") or body["window"]


def _order(row: dict[str, Any]) -> tuple:
    return (-row["alerting"], -(row["score"] or 0.0))


def groups(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_group[(row["version"], row["role"])].append(row)
    return dict(sorted(by_group.items()))


def alert_lines(rows: list[dict[str, Any]]) -> list[str]:
    return [row["body"]["message"] for row in rows if row["alerting"]]


def text(model: str, rows: list[dict[str, Any]], alerts: list[str], history: list[dict[str, Any]],
         min_samples: int | None = None, everything: bool = False) -> str:
    if not rows:
        return (f"{model}: no recorded answers to compare with a baseline yet (does its package name one in "
                "model.yaml `baseline:`? see docs/drift.md)")
    lines = [f"{model}: live inputs and outputs against the training baseline"]
    for (version, role), members in groups(rows).items():
        for kind in ("rows", "time"):
            window = sorted((r for r in members if r["window_kind"] == kind), key=_order)
            if not window:
                continue
            drifted = sum(r["alerting"] for r in window)
            lines.append(f"\nversion {version} ({role}), {window[0]['body']['window']}: {len(window)} columns, "
                         f"{drifted} drifted")
            shown = window if everything else window[:TEXT_ROWS]
            table = [HEADERS[:2] + HEADERS[3:]] + [_line(r, min_samples)[:2] + _line(r, min_samples)[3:] for r in shown]
            widths = [max(len(str(r[i])) for r in table) for i in range(len(table[0]))]
            lines += ["  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in table]
            if len(window) > len(shown):
                lines.append(f"  ... {len(window) - len(shown)} more (--all shows every column)")
    if history:
        lines.append("\nalerts raised by the monitor:")
        for alert in history:
            state = "open" if alert["cleared_at"] is None else "cleared"
            lines.append(f"  [{state}] {alert['message']}")
    lines += [f"ALERT: {a}" for a in alerts]
    return "\n".join(lines)


def page(model: str, rows: list[dict[str, Any]], alerts: list[str], history: list[dict[str, Any]],
         min_samples: int | None = None) -> str:
    body = [f"<div class=\"alert\">Drift: {html.escape(a)}</div>" for a in alerts]
    if not rows:
        body.append("<p>No recorded answers to compare with a baseline yet.</p>")
    body.append("<p class=\"note\">PSI: population stability index over the baseline's bins (deciles of the "
                "training data, categories, missing values); a column has drifted when its PSI reaches the "
                "threshold and the test's p-value is below alpha. See docs/drift.md.</p>")
    for (version, role), members in groups(rows).items():
        body.append(f"<h2>Version {html.escape(version)} ({html.escape(role)})</h2>")
        ordered = sorted(members, key=_order)
        spans = {r["window_kind"]: f"{r['body']['window']} ({r['row_count']:,} rows)" for r in ordered}
        body.append("<p>Windows: " + "; ".join(html.escape(spans[k]) for k in sorted(spans)) + ".</p>")
        charts = []
        by_feature: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for row in ordered:
            by_feature[(row["tensor"], row["feature"])].append(row)
        for (tensor, feature), windows in by_feature.items():
            first = windows[0]["body"]
            series = {"training baseline": first["baseline_shares"]}
            for row in sorted(windows, key=lambda r: r["window_kind"]):
                series[f"live: {_short(row['body'])}"] = row["body"]["live_shares"]
            worst = max(windows, key=lambda r: r["score"] or 0.0)
            flag = " DRIFT" if any(r["alerting"] for r in windows) else ""
            title = f"{feature}: PSI {_number(worst['score'], '.3f')} (threshold {worst['threshold']:g}){flag}"
            charts.append(f"<div>{html.bar_chart(title, first['labels'], series, 'share of rows')}</div>")
        body.append(f"<div style=\"display: flex; flex-wrap: wrap; gap: 8px\">{''.join(charts)}</div>")
        body.append(html.table(HEADERS, [_line(r, min_samples) for r in ordered], text_columns=3))
    if history:
        body.append("<h2>Alerts raised by the monitor</h2>")
        body.append(html.table(["state", "alert"], [["open" if a["cleared_at"] is None else "cleared", a["message"]]
                                                    for a in history], text_columns=2))
    return html.page(f"{model}: drift", body)
