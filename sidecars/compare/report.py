"""The comparison as a person reads it: text for the terminal, an HTML page with plots.

Both are built from the same report as the JSON output, and the page embeds the text itself,
so the three never say different things.
"""

from __future__ import annotations

import datetime
from typing import Any

from meshserve.sidecars.compare.columns import label
from meshserve.sidecars.compare.verdict import Thresholds
from meshserve.sidecars.reports import html


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _interval(test: dict[str, Any], digits: str = "+.4g") -> str:
    bounds = test.get("interval")
    spread = "no interval (too few rows)" if bounds is None else \
        f"95% interval {format(bounds[0], digits)} to {format(bounds[1], digits)}"
    return f"{spread}; {test['test']} p {test['pvalue']:.2g}"


def _heading(entry: dict[str, Any]) -> str:
    if entry["kind"] == "shadow":
        return (f"shadow version {entry['version']} against primary {entry['primary_version']}: "
                f"{entry['pairs']:,} pairs ({entry['both_answered']:,} answered by both)")
    window = entry["window"]
    return (f"canary version {entry['version']}: {entry['requests']:,} requests against primary "
            f"{entry['primary_version'] or '-'}'s {entry['primary_requests']:,} in the same window, while both were "
            f"live ({_when(window['start'])} to {_when(window['end'])})")


def _output_lines(name: str, figures: dict[str, Any]) -> list[str]:
    if figures["kind"] == "class" and "agreement" in figures:
        low, high = figures["interval"]
        return [f"  {name}: agreement {_pct(figures['agreement'])} (95% interval {_pct(low)} to {_pct(high)}) "
                f"over {figures['pairs']:,} pairs"]
    if figures["kind"] == "class":
        return [f"  {name}: label frequencies differ by Jensen-Shannon distance {figures['jensen_shannon']:.4f} "
                f"(chi-square p {figures['pvalue']:.2g}) over {figures['n']['primary']:,} primary and "
                f"{figures['n']['canary']:,} canary rows"]
    lines = []
    for column, c in figures["columns"].items():
        if "absolute_difference" in c:
            a = c["absolute_difference"]
            lines.append(f"  {label(name, column)}: |difference| p50 {a['p50']:.4g}, p99 {a['p99']:.4g}, max "
                         f"{a['max']:.4g}; mean difference {c['mean_difference']:+.4g} ({_interval(c)}); "
                         f"Kolmogorov-Smirnov {c['ks_statistic']:.4f} (p {c['ks_pvalue']:.2g}) over {c['pairs']:,} "
                         "pairs")
        else:
            lines.append(f"  {label(name, column)}: Kolmogorov-Smirnov {c['ks_statistic']:.4f} "
                         f"(p {c['ks_pvalue']:.2g}); median primary {c['primary']['p50']:.4g}, canary {c['canary']['p50']:.4g} over "
                         f"{c['n']['primary']:,} and {c['n']['canary']:,} rows")
    return lines


def _quality_lines(entry: dict[str, Any]) -> list[str]:
    quality, kind = entry.get("quality"), entry["kind"]
    if not quality:
        return ["  quality: no outcomes reported for these requests (`meshserve outcomes`)"]
    if kind == "shadow":
        lines = [f"  quality on the same {quality['requests']:,} requests, answered by both, that have outcomes:"]
    else:
        lines = [f"  quality on outcomes in the same window: {quality['requests']:,} canary and "
                 f"{quality['primary_requests']:,} primary requests:"]
    for name, f in quality["outputs"].items():
        metric = f["metric"]
        lines.append(f"    {name} {metric}: primary {f['primary'][metric]:.4f} on {f['primary']['n']:,} rows, {kind} "
                     f"{f[kind][metric]:.4f} on {f[kind]['n']:,}; difference {f['difference']:+.4f} ({_interval(f)})")
    return lines


def _verdict_line(entry: dict[str, Any]) -> str:
    verdict = entry["verdict"]
    against = f" (against {entry['primary_version']})" if entry["kind"] == "shadow" else ""
    return f"  verdict for {entry['kind']} version {entry['version']}{against}: {verdict['verdict']} " \
           f"({verdict['basis']}): {verdict['reason']}"


def _lines_for(entry: dict[str, Any]) -> list[str]:
    kind, errors, latency = entry["kind"], entry["errors"], entry["latency_ms"]
    lines = [_heading(entry),
             f"  error rate: primary {_pct(errors['primary']['error_rate'])}, {kind} {_pct(errors[kind]['error_rate'])}"
             f" (difference: {_interval(errors['difference'], '+.2%')})"]
    if latency.get("primary") and latency.get(kind):
        lines.append("  latency ms p50/p90/p99: " + ", ".join(
            f"{side} " + "/".join(f"{latency[side][q]:.2f}" for q in ("p50", "p90", "p99"))
            for side in ("primary", kind)))
    for name, figures in entry["outputs"].items():
        lines += _output_lines(name, figures)
    lines += _quality_lines(entry)
    lines += [f"  WARNING: {warning}" for warning in entry["warnings"]]
    return lines + [_verdict_line(entry)]


def text(report: dict[str, Any]) -> str:
    entries = report["shadows"] + report["canaries"]
    lines = [line for entry in entries for line in _lines_for(entry)]
    if not entries:
        lines.append(f"{report['model']}: no shadow or canary traffic recorded in this window "
                     "(set shadows or canary weights with `meshserve rollout`)")
    thresholds = Thresholds(**report["thresholds"]) if report.get("thresholds") else Thresholds()
    return "\n".join(lines + [thresholds.said()])


def _column_table(name: str, figures: dict[str, Any]) -> str:
    paired = any("absolute_difference" in c for c in figures["columns"].values())
    if paired:
        headers = ["column", "pairs", "|difference| p50", "p99", "mean difference", "95% interval", "p", "KS"]
        rows = [[label(name, column), c["pairs"], f"{c['absolute_difference']['p50']:.4g}",
                 f"{c['absolute_difference']['p99']:.4g}", f"{c['mean_difference']:+.4g}",
                 "-" if c["interval"] is None else f"{c['interval'][0]:+.4g} to {c['interval'][1]:+.4g}",
                 f"{c['pvalue']:.2g}", f"{c['ks_statistic']:.4f}"] for column, c in figures["columns"].items()]
    else:
        headers = ["column", "primary rows", "canary rows", "primary p50", "canary p50", "primary p90", "canary p90",
                   "KS", "p"]
        rows = [[label(name, column), c["n"]["primary"], c["n"]["canary"], f"{c['primary']['p50']:.4g}",
                 f"{c['canary']['p50']:.4g}", f"{c['primary']['p90']:.4g}", f"{c['canary']['p90']:.4g}",
                 f"{c['ks_statistic']:.4f}", f"{c['ks_pvalue']:.2g}"] for column, c in figures["columns"].items()]
    return f"<p>{html.escape(name)}: each column on its own</p>" + html.table(headers, rows)


def _output_html(entry: dict[str, Any], name: str, figures: dict[str, Any]) -> list[str]:
    if figures["kind"] == "class" and "confusion" in figures:
        return [html.matrix(f"{name}: primary against shadow", figures["labels"], figures["confusion"], "primary",
                            "shadow")]
    if figures["kind"] == "class":
        rows = [[lab, f"{100 * p:.1f}%", f"{100 * c:.1f}%"] for lab, p, c in
                zip(figures["labels"], figures["primary_frequency"], figures["canary_frequency"])]
        return [f"<p>{html.escape(name)}: label frequencies</p>", html.table(["label", "primary", "canary"], rows)]
    parts = [_column_table(name, figures)]
    if entry["kind"] == "canary":
        for column, c in figures["columns"].items():
            series = {side: [(q, c[side][f"p{q}"]) for q in (50, 90, 99)] for side in ("primary", "canary")}
            parts.append(html.line_chart(f"{label(name, column)}: quantiles", series, column, times=False, height=240))
    return parts


def _quality_html(entry: dict[str, Any]) -> list[str]:
    quality, kind = entry.get("quality"), entry["kind"]
    if not quality:
        return ["<p>No outcomes reported for these requests.</p>"]
    rows = [[name, f["metric"], f"{f['primary'][f['metric']]:.4f} ({f['primary']['n']:,})",
             f"{f[kind][f['metric']]:.4f} ({f[kind]['n']:,})", f"{f['difference']:+.4f}",
             "-" if f["interval"] is None else f"{f['interval'][0]:+.4f} to {f['interval'][1]:+.4f}",
             f"{f['test']} p {f['pvalue']:.2g}"] for name, f in quality["outputs"].items()]
    same = "on the same requests" if kind == "shadow" else "in the same window"
    return [f"<p>Quality on reported outcomes, {same}</p>",
            html.table(["output", "metric", "primary (rows)", f"{kind} (rows)", "difference", "95% interval", "test"],
                       rows, text_columns=2)]


def _entry_html(entry: dict[str, Any]) -> list[str]:
    verdict = entry["verdict"]
    body = [f"<h2>{html.escape(_heading(entry))}</h2>",
            f"<p><strong>verdict: {html.escape(verdict['verdict'])}</strong> ({html.escape(verdict['basis'])}): "
            f"{html.escape(verdict['reason'])}</p>"]
    body += [f"<div class=\"alert\">WARNING: {html.escape(w)}</div>" for w in entry["warnings"]]
    latency, kind = entry["latency_ms"], entry["kind"]
    if latency.get("primary") and latency.get(kind):
        series = {side: [(q, latency[side][f"p{q}"]) for q in (50, 90, 99)] for side in ("primary", kind)}
        body.append(html.line_chart("latency percentiles (ms)", series, "ms", times=False, height=240))
    for name, figures in entry["outputs"].items():
        body += _output_html(entry, name, figures)
    return body + _quality_html(entry)


def page(report: dict[str, Any]) -> str:
    body = ["<h2>Summary</h2>", "<pre>" + html.escape(text(report)) + "</pre>"]
    for entry in report["shadows"] + report["canaries"]:
        body += _entry_html(entry)
    return html.page(f"{report['model']}: versions compared", body)
