"""The quality report: live quality per version and role, as text and as an HTML page with plots."""

from __future__ import annotations

from typing import Any

from meshserve.sidecars.records.quality import headline
from meshserve.sidecars.reports import html


def _label(group: dict[str, Any]) -> str:
    return f"version {group['version']} ({group['role']})"


def summary_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for group in report["groups"]:
        delay = group.get("outcome_delay_s", {})
        for output, figures in group["outputs"].items():
            main = headline(figures)
            extra = []
            for key in ("precision", "recall", "auc", "brier", "rmse"):
                if key in figures:
                    extra.append(f"{key} {figures[key]:.4f}")
            rows.append([_label(group), output, f"{figures['n']:,}",
                         f"{main[0]} {main[1]:.4f}" if main else "-", ", ".join(extra) or "-",
                         f"{delay.get('median', 0):.0f} s / {delay.get('p90', 0):.0f} s" if delay else "-"])
    return rows


HEADERS = ["variant", "output", "outcomes", "headline", "more", "outcome delay median / p90"]


def text(report: dict[str, Any], model: str, alerts: list[str]) -> str:
    rows = summary_rows(report)
    if not rows:
        return f"{model}: no recorded prediction has an outcome yet (report them with `meshserve outcomes FILE`)"
    widths = [max(len(str(r[i])) for r in rows + [HEADERS]) for i in range(len(HEADERS))]
    lines = [f"{model}: live quality from recorded predictions joined to reported outcomes"]
    lines.append("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths)))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines += [f"ALERT: {alert}" for alert in alerts]
    return "\n".join(lines)


def page(report: dict[str, Any], model: str, alerts: list[str]) -> str:
    body = [f"<div class=\"alert\">{html.escape(a)}</div>" for a in alerts]
    body.append("<h2>Summary</h2>")
    body.append(html.table(HEADERS, summary_rows(report), text_columns=2) if report["groups"] else
                "<p>No recorded prediction has an outcome yet.</p>")
    outputs = sorted({o for g in report["groups"] for o in g["outputs"]})
    for output in outputs:
        series: dict[str, list[tuple[float, float]]] = {}
        metric = None
        for group in report["groups"]:
            for window in group.get("windows", []):
                figures = window["outputs"].get(output)
                main = headline(figures) if figures else None
                if main:
                    metric = main[0]
                    series.setdefault(_label(group), []).append((window["start"], main[1]))
        if series:
            body.append(f"<h2>{html.escape(output)} over time</h2>")
            body.append(html.line_chart(f"{metric} of {output} per window", series, metric or ""))
        for group in report["groups"]:
            figures = group["outputs"].get(output)
            if figures and "confusion" in figures:
                body.append(f"<h2>{html.escape(output)}: {html.escape(_label(group))}</h2>")
                body.append(html.matrix("Confusion matrix", figures["labels"], figures["confusion"],
                                        "outcome", "prediction"))
                if figures.get("reliability"):
                    body.append(html.table(["probability bin", "predictions", "mean predicted", "observed rate"],
                                           [[r["bin"], r["n"], f"{r['predicted']:.3f}", f"{r['observed']:.3f}"]
                                            for r in figures["reliability"]]))
    return html.page(f"{model}: live quality", body)


def alerts_for(report: dict[str, Any], min_accuracy: float | None, max_mae: float | None,
               min_outcomes: int) -> list[str]:
    said = []
    for group in report["groups"]:
        for output, figures in group["outputs"].items():
            if figures["n"] < min_outcomes:
                continue
            if min_accuracy is not None and figures.get("accuracy", 1.0) < min_accuracy:
                said.append(f"{_label(group)}: accuracy of {output} is {figures['accuracy']:.4f} on "
                            f"{figures['n']} outcomes, below {min_accuracy}")
            if max_mae is not None and figures.get("mae", 0.0) > max_mae:
                said.append(f"{_label(group)}: MAE of {output} is {figures['mae']:.4g} on {figures['n']} outcomes, "
                            f"above {max_mae}")
    return said
