"""The comparison as a person reads it: text for the terminal, an HTML page with plots."""

from __future__ import annotations

from typing import Any

from meshserve.sidecars.reports import html


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _lines_for(entry: dict[str, Any]) -> list[str]:
    kind, version = entry["kind"], entry["version"]
    other = "shadow" if kind == "shadow" else "canary"
    errors, latency = entry["errors"], entry["latency_ms"]
    if kind == "shadow":
        lines = [f"shadow version {version} against primary {entry['primary_version']}: {entry['pairs']:,} pairs "
                 f"({entry['both_answered']:,} answered by both)"]
    else:
        lines = [f"canary version {version}: {entry['requests']:,} requests against the primary's "
                 f"{entry['primary_requests']:,} in the same window"]
    lines.append(f"  error rate: primary {_pct(errors['primary']['error_rate'])}, "
                 f"{other} {_pct(errors[other]['error_rate'])}")
    if latency.get("primary") and latency.get(other):
        lines.append("  latency ms p50/p90/p99: primary " + "/".join(f"{latency['primary'][q]:.2f}" for q in
                     ("p50", "p90", "p99")) + f", {other} " + "/".join(f"{latency[other][q]:.2f}" for q in
                                                                    ("p50", "p90", "p99")))
    for name, figures in entry["outputs"].items():
        if figures["kind"] == "class" and "agreement" in figures:
            low, high = figures["interval"]
            lines.append(f"  {name}: agreement {_pct(figures['agreement'])} (95% interval {_pct(low)} to "
                         f"{_pct(high)}) over {figures['pairs']:,} pairs")
        elif figures["kind"] == "class":
            lines.append(f"  {name}: label frequencies differ by Jensen-Shannon distance "
                         f"{figures['jensen_shannon']:.4f}")
        elif "absolute_difference" in figures:
            a, r = figures["absolute_difference"], figures["relative_difference"]
            lines.append(f"  {name}: |difference| p50 {a['p50']:.4g}, p99 {a['p99']:.4g}, max {a['max']:.4g}; "
                         f"relative p50 {r['p50']:.3g}, p99 {r['p99']:.3g} over {figures['pairs']:,} values")
        else:
            lines.append(f"  {name}: Kolmogorov-Smirnov {figures['ks_statistic']:.4f} (p {figures['ks_pvalue']:.3g}); "
                         f"median primary {figures['primary']['p50']:.4g}, canary {figures['canary']['p50']:.4g}")
    return lines


def _quality_lines(report: dict[str, Any]) -> list[str]:
    from meshserve.sidecars.records.quality_report import summary_rows

    rows = summary_rows(report.get("quality") or {"groups": []})
    if not rows:
        return []
    return ["live quality on reported outcomes:"] + [f"  {row[0]} {row[1]}: {row[3]} on {row[2]} outcomes ({row[4]})"
                                                     for row in rows]


def text(report: dict[str, Any]) -> str:
    entries = report["shadows"] + report["canaries"]
    lines = [line for entry in entries for line in _lines_for(entry)]
    if not entries:
        lines.append(f"{report['model']}: no shadow or canary traffic recorded in this window "
                     "(set shadows or canary weights with `meshserve rollout`)")
    return "\n".join(lines + _quality_lines(report))


def _bars(title: str, labels: list[str], groups: dict[str, list[float]]) -> str:
    rows = [[label] + [f"{100 * values[i]:.1f}%" for values in groups.values()] for i, label in enumerate(labels)]
    return f"<p>{html.escape(title)}</p>" + html.table(["label", *groups], rows)


def page(report: dict[str, Any]) -> str:
    body = ["<h2>Summary</h2>", "<pre>" + html.escape(text(report)) + "</pre>"]
    for entry in report["shadows"] + report["canaries"]:
        body.append(f"<h2>{entry['kind']} version {html.escape(entry['version'])}</h2>")
        latency = entry["latency_ms"]
        other = entry["kind"]
        if latency.get("primary") and latency.get(other):
            series = {"primary": [(q, latency["primary"][f"p{q}"]) for q in (50, 90, 99)],
                      other: [(q, latency[other][f"p{q}"]) for q in (50, 90, 99)]}
            body.append(html.line_chart("latency percentiles (ms)", series, "ms", times=False, height=240))
        for name, figures in entry["outputs"].items():
            if figures["kind"] == "class" and "confusion" in figures:
                body.append(html.matrix(f"{name}: primary against shadow", figures["labels"], figures["confusion"],
                                        "primary", "shadow"))
            elif figures["kind"] == "class":
                body.append(_bars(f"{name}: label frequencies", figures["labels"],
                                  {"primary": figures["primary_frequency"], "canary": figures["canary_frequency"]}))
            elif "absolute_difference" in figures:
                a = figures["absolute_difference"]
                body.append(html.line_chart(f"{name}: |shadow - primary| quantiles",
                                            {"absolute difference": [(50, a["p50"]), (90, a["p90"]), (99, a["p99"])]},
                                            "difference", times=False, height=240))
            else:
                series = {"primary": [(50, figures["primary"]["p50"]), (90, figures["primary"]["p90"]),
                                      (99, figures["primary"]["p99"])],
                          "canary": [(50, figures["canary"]["p50"]), (90, figures["canary"]["p90"]),
                                     (99, figures["canary"]["p99"])]}
                body.append(html.line_chart(f"{name}: quantiles", series, name, times=False, height=240))
    quality = report.get("quality") or {"groups": []}
    if quality["groups"]:
        from meshserve.sidecars.records.quality_report import HEADERS, summary_rows

        body.append("<h2>Live quality on reported outcomes</h2>")
        body.append(html.table(HEADERS, summary_rows(quality), text_columns=2))
    return html.page(f"{report['model']}: versions compared", body)
