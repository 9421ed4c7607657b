"""meshserve's Grafana dashboards drawn as Grafana lays them out, from a real Prometheus, where
Grafana itself cannot run (it is not part of the test run).

For each dashboard JSON (meshserve/observability/dashboards.py) every panel's gridPos, title,
unit and targets are read; each target is asked of Prometheus the way Grafana asks it (a range
query over the last minutes, or an instant query for a table), with the variables replaced by
dashboard_queries.substituted(); and one self-contained HTML page per dashboard is written:
Chart.js and the console's chart settings inlined (meshserve/console/static/), panels on a
24-column grid of 30 px rows as Grafana's, time series as line charts with their legends,
stats as numbers, tables as tables, and "No data" where a panel's queries returned nothing.
dashboard_drawing.js draws the page (dashboard_drawing.css: Grafana's dark look), and marks on
<body> how many panels it drew, with data and without, so a browser test can tell a drawn
dashboard from a blank one.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from conftest import ROOT
from dashboard_queries import substituted

from meshserve.observability.dashboards import rendered

STATIC = ROOT / "meshserve" / "console" / "static"
HERE = Path(__file__).parent
# Grafana draws about one point per pixel; a few hundred is plenty for a screenshot.
POINTS = 200


@dataclass
class Window:
    """The time range every panel of a page shows, and what stands for Grafana's variables."""
    start: float
    end: float
    step: float
    rate_interval: str  # $__rate_interval: max(4 scrapes, a few steps), as Grafana picks it
    model: str  # $model


@dataclass
class Series:
    name: str
    points: list[tuple[float, float | None]]  # None where Prometheus answered NaN: a gap


@dataclass
class DrawnPanel:
    kind: str  # Grafana's panel type: row, timeseries, stat, table
    title: str
    grid: dict  # gridPos: x, y, w, h in Grafana's 24-column grid
    unit: str = ""
    description: str = ""
    stacked: bool = False
    thresholds: list[dict] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # a table's
    rows: list[list[str]] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        return bool(self.rows) or any(y is not None for s in self.series for _, y in s.points)


def _get(address: str, path: str, **params) -> dict:
    url = f"http://{address}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)["data"]


def window_for(address: str, model: str, minutes: float = 5, scrape_interval_s: float = 1) -> Window:
    """The last MINUTES, or since Prometheus's first scrape when that is later (nothing before it)."""
    end = time.time()
    first = _get(address, "/api/v1/query", query=f"min(min_over_time(timestamp(up)[{int(minutes * 60)}s:1s]))",
                 time=end)["result"]
    start = max(end - minutes * 60, float(first[0]["value"][1]) if first else 0.0)
    step = max(scrape_interval_s, math.ceil((end - start) / POINTS))
    # Four scrapes is Grafana's least; a busy machine scrapes late, so a few more.
    rate_interval = f"{int(max(4 * step, 10 * scrape_interval_s))}s"
    return Window(start, end, step, rate_interval, model)


def shown_range(window: Window) -> str:
    seconds = window.end - window.start
    return f"Last {round(seconds)} seconds" if seconds < 120 else f"Last {round(seconds / 60)} minutes"


def legend(legend_format: str, labels: dict[str, str], expr: str) -> str:
    """A series' name as Grafana writes it: the legendFormat with {{label}} filled in, or else
    the series' labels, or else the query."""
    if legend_format:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), legend_format).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in shown.items()) + "}" if shown else expr


def _number(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def range_series(address: str, target: dict, window: Window) -> list[Series]:
    expr = substituted(target["expr"], window.model, window.rate_interval)
    result = _get(address, "/api/v1/query_range", query=expr, start=window.start, end=window.end, step=window.step)
    return [Series(legend(target.get("legendFormat", ""), r["metric"], expr),
                   [(float(t), _number(v)) for t, v in r["values"]]) for r in result["result"]]


def table_rows(address: str, target: dict, window: Window) -> tuple[list[str], list[list[str]]]:
    """An instant query as Grafana's table shows it: one row per series, its labels then its value."""
    expr = substituted(target["expr"], window.model, window.rate_interval)
    result = _get(address, "/api/v1/query", query=expr, time=window.end)["result"]
    labels = sorted({k for r in result for k in r["metric"] if k != "__name__"})
    rows = [[r["metric"].get(k, "") for k in labels] + [f"{float(r['value'][1]):.4g}"] for r in result]
    return labels + ["Value"], rows


def drawn_panel(address: str, panel: dict, window: Window) -> DrawnPanel:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    drawn = DrawnPanel(kind=panel["type"], title=panel["title"], grid=panel["gridPos"],
                       unit=defaults.get("unit", ""), description=panel.get("description", ""),
                       stacked=defaults.get("custom", {}).get("stacking", {}).get("mode", "none") != "none",
                       thresholds=defaults.get("thresholds", {}).get("steps", []))
    for target in panel.get("targets", []):
        if panel["type"] == "table":
            drawn.columns, drawn.rows = table_rows(address, target, window)
        else:
            drawn.series += range_series(address, target, window)
    return drawn


def page(board: dict, panels: list[DrawnPanel], window: Window, address: str) -> str:
    """One self-contained HTML page: the dashboard's panels and everything that draws them."""
    variables = [("Data source", "Prometheus")] + \
        [("Model", window.model) for v in board.get("templating", {}).get("list", []) if v["name"] == "model"]
    spec = {"title": board["title"], "start": window.start, "end": window.end,
            "range": shown_range(window), "variables": variables,
            "source": f"Prometheus at {address}, rate window {window.rate_interval}",
            "panels": [asdict(p) | {"has_data": p.has_data} for p in panels]}
    scripts = "".join(f"<script>\n{(folder / name).read_text()}\n</script>\n" for folder, name in (
        (STATIC, "chart.umd.min.js"), (STATIC, "charts.js"), (HERE, "dashboard_drawing.js")))
    # `</` would end the script early; JSON allows it escaped.
    data = json.dumps(spec).replace("</", "<\\/")
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(board['title'])}</title>\n"
            f"<style>{(HERE / 'dashboard_drawing.css').read_text()}</style></head>\n"
            f"<body><script type=\"application/json\" id=\"dashboard\">{data}</script>\n{scripts}</body></html>\n")


def draw_dashboards(address: str, folder: Path, model: str,
                    minutes: float = 5) -> dict[str, tuple[Path, list[DrawnPanel]]]:
    """Dashboard uid -> (its page written into FOLDER, its panels with their data), all over the same window."""
    folder.mkdir(parents=True, exist_ok=True)
    window = window_for(address, model, minutes)
    drawn = {}
    for name, text in rendered().items():
        board = json.loads(text)
        panels = [drawn_panel(address, panel, window) for panel in board["panels"]]
        path = folder / name.replace(".json", ".html")
        path.write_text(page(board, panels, window, address))
        drawn[board["uid"]] = (path, panels)
    return drawn
