"""Self-contained HTML pages: one file, no network, opens from disk.

Charts are drawn by the same charting library as the console (Chart.js, shipped in
meshserve/console/static/ with meshserve's chart settings in charts.js), inlined into the page,
so a plot looks and behaves the same in a report and in the console. Each chart also carries a
plain SVG drawing inside <noscript>, for readers that run no script (mail clients, text browsers
turned graphical, printing pipelines). Tables and heat-mapped matrices are plain HTML.
"""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Sequence
from functools import cache
from importlib.resources import files

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
.alert { background: #fde2e1; border: 1px solid #d62728; padding: 0.6em 1em; margin: 1em 0; }
.note { color: #555; font-size: 0.9em; }
"""


def escape(text: object) -> str:
    return html.escape(str(text))


@cache
def chart_scripts() -> str:
    """The charting library and meshserve's chart settings, as one inline script."""
    static = files("meshserve.console") / "static"
    code = (static / "chart.umd.min.js").read_text() + "\n" + (static / "charts.js").read_text()
    return code.replace("</script", "<\\/script")


def page(title: str, body: Sequence[str]) -> str:
    generated = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    content = "".join(body)
    scripts = (f"<script>{chart_scripts()}</script><script>MeshCharts.drawAll(document);</script>"
               if CHART_CLASS in content else "")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f"<p class=\"note\">Generated {generated} by meshserve.</p>{content}{scripts}</body></html>\n")


CHART_CLASS = "meshserve-chart"


def _figure(spec: dict, width: int, height: int, fallback: str) -> str:
    """A chart drawn by charts.js from SPEC, with FALLBACK (SVG) for readers without script."""
    data = json.dumps(spec, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (f"<figure style=\"margin: 0; width: {width}px\"><canvas width=\"{width}\" height=\"{height}\" role=\"img\" "
            f"aria-label=\"{escape(spec['title'])}\"></canvas><script type=\"application/json\" class=\"{CHART_CLASS}\">"
            f"{data}</script><noscript>{fallback}</noscript></figure>")


def _finite(value: float | None) -> float | None:
    """VALUE for JSON: NaN and infinities (no value to draw) become gaps."""
    if value is None:
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], text_columns: int = 1) -> str:
    head = "".join(f"<th class=\"{'text' if i < text_columns else ''}\">{escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td class=\"{'text' if i < text_columns else ''}\">{escape(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def matrix(title: str, labels: Sequence[str], counts: Sequence[Sequence[int]], row_name: str, column_name: str) -> str:
    """A confusion matrix, each cell shaded by its share of its row."""
    cells = []
    for label, row in zip(labels, counts):
        total = sum(row) or 1
        tds = "".join(f"<td style=\"background: rgba(31,119,180,{c / total:.2f})\">{c}</td>" for c in row)
        cells.append(f"<tr><th class=\"text\">{escape(label)}</th>{tds}</tr>")
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    return (f"<p>{escape(title)} ({escape(row_name)} down, {escape(column_name)} across)</p>"
            f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(cells)}</tbody></table>")


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], y_label: str, times: bool = True,
               width: int = 760, height: int = 300) -> str:
    """One line per series; x is seconds since the epoch (shown as UTC times) when TIMES."""
    if not any(series.values()):
        return f"<p>{escape(title)}: no data yet.</p>"
    spec = {"kind": "line", "title": title, "y_label": y_label, "times": times,
            "series": [{"name": name, "points": [[float(x), _finite(y)] for x, y in sorted(values)]}
                       for name, values in series.items()]}
    return _figure(spec, width, height, _line_svg(title, series, y_label, times, width, height))


def _line_svg(title: str, series: dict[str, list[tuple[float, float]]], y_label: str, times: bool,
              width: int, height: int) -> str:
    points = [p for values in series.values() for p in values]
    left, right, top, bottom = 60, 45, 30, 50
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.05 * (abs(y0) or 1), y1 + 0.05 * (abs(y1) or 1)

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    parts = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\">",
             f"<title>{escape(title)}</title>",
             f"<text x=\"{left}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{escape(title)}</text>",
             f"<line x1=\"{left}\" y1=\"{height - bottom}\" x2=\"{width - right}\" y2=\"{height - bottom}\" "
             "stroke=\"#888\"/>",
             f"<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{height - bottom}\" stroke=\"#888\"/>"]
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        parts.append(f"<text x=\"{left - 6}\" y=\"{sy(y) + 4:.1f}\" font-size=\"11\" text-anchor=\"end\">{y:.4g}</text>")
        parts.append(f"<line x1=\"{left}\" y1=\"{sy(y):.1f}\" x2=\"{width - right}\" y2=\"{sy(y):.1f}\" "
                     "stroke=\"#eee\"/>")
    for i in range(4):
        x = x0 + (x1 - x0) * i / 3
        label = datetime.datetime.fromtimestamp(x, datetime.timezone.utc).strftime("%m-%d %H:%M") if times else f"{x:.3g}"
        parts.append(f"<text x=\"{sx(x):.1f}\" y=\"{height - bottom + 16}\" font-size=\"11\" "
                     f"text-anchor=\"middle\">{escape(label)}</text>")
    parts.append(f"<text x=\"14\" y=\"{(top + height - bottom) / 2:.0f}\" font-size=\"12\" "
                 f"transform=\"rotate(-90 14 {(top + height - bottom) / 2:.0f})\" "
                 f"text-anchor=\"middle\">{escape(y_label)}</text>")
    for i, (name, values) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(values))
        parts.append(f"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{path}\"/>")
        for x, y in values:
            parts.append(f"<circle cx=\"{sx(x):.1f}\" cy=\"{sy(y):.1f}\" r=\"3\" fill=\"{colour}\"/>")
        parts.append(f"<rect x=\"{left + 10 + i * 170}\" y=\"{height - 18}\" width=\"12\" height=\"12\" "
                     f"fill=\"{colour}\"/><text x=\"{left + 26 + i * 170}\" y=\"{height - 8}\" "
                     f"font-size=\"12\">{escape(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, labels: Sequence[str], series: dict[str, Sequence[float]], y_label: str,
              width: int = 500, height: int = 260) -> str:
    """Grouped bars: for each label one bar per series (e.g. a baseline and a live histogram)."""
    if not labels or not any(len(bars) for bars in series.values()):
        return f"<p>{escape(title)}: no data yet.</p>"
    spec = {"kind": "bars", "title": title, "y_label": y_label, "labels": [str(label) for label in labels],
            "series": [{"name": name, "values": [_finite(v) for v in bars]} for name, bars in series.items()]}
    return _figure(spec, width, height, _bar_svg(title, labels, series, y_label, width, height))


def _bar_svg(title: str, labels: Sequence[str], series: dict[str, Sequence[float]], y_label: str,
             width: int, height: int) -> str:
    values = [v for bars in series.values() for v in bars]
    left, right, top, bottom = 50, 10, 40, 80
    y1 = max(max(values), 1e-9) * 1.1
    plot_w, plot_h = width - left - right, height - top - bottom
    group_w = plot_w / len(labels)
    bar_w = group_w * 0.8 / max(len(series), 1)

    def sy(y: float) -> float:
        return height - bottom - y / y1 * plot_h

    parts = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\">",
             f"<title>{escape(title)}</title>",
             f"<text x=\"{left}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{escape(title)}</text>",
             f"<line x1=\"{left}\" y1=\"{height - bottom}\" x2=\"{width - right}\" y2=\"{height - bottom}\" "
             "stroke=\"#888\"/>"]
    for i in range(4):
        y = y1 * i / 3
        parts.append(f"<text x=\"{left - 5}\" y=\"{sy(y) + 4:.1f}\" font-size=\"10\" text-anchor=\"end\">{y:.2g}</text>")
        parts.append(f"<line x1=\"{left}\" y1=\"{sy(y):.1f}\" x2=\"{width - right}\" y2=\"{sy(y):.1f}\" stroke=\"#eee\"/>")
    parts.append(f"<text x=\"12\" y=\"{top + plot_h / 2:.0f}\" font-size=\"11\" text-anchor=\"middle\" "
                 f"transform=\"rotate(-90 12 {top + plot_h / 2:.0f})\">{escape(y_label)}</text>")
    for k, (name, bars) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        for i, value in enumerate(bars):
            x = left + i * group_w + group_w * 0.1 + k * bar_w
            parts.append(f"<rect x=\"{x:.1f}\" y=\"{sy(value):.1f}\" width=\"{bar_w:.1f}\" "
                         f"height=\"{max(0.0, height - bottom - sy(value)):.1f}\" fill=\"{colour}\">"
                         f"<title>{escape(name)} {escape(labels[i])}: {value:.4g}</title></rect>")
        parts.append(f"<rect x=\"{left + k * 150}\" y=\"22\" width=\"11\" height=\"11\" "
                     f"fill=\"{colour}\"/><text x=\"{left + 15 + k * 150}\" y=\"32\" "
                     f"font-size=\"11\">{escape(name)}</text>")
    for i, label in enumerate(labels):
        x = left + (i + 0.5) * group_w
        parts.append(f"<text x=\"{x:.1f}\" y=\"{height - bottom + 10}\" font-size=\"9\" text-anchor=\"end\" "
                     f"transform=\"rotate(-40 {x:.1f} {height - bottom + 10})\">{escape(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)
