"""Building blocks for meshserve's Grafana dashboards: PromQL targets and panels on the
provisioned Prometheus datasource, laid out in rows of a 24-column grid.

The dashboards are code (meshserve/observability/dashboards.py) built with Grafana's own
Foundation SDK, so a panel's query is reviewed like any other change and the JSON Grafana
loads is generated, never edited. These helpers keep every panel of the three dashboards
alike: the same datasource, refIds A, B, ... in order, and ids that stay stable between
generations (Grafana links to a panel by its id).
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import common as shared
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

# The uid compose/grafana/provisioning/datasources/prometheus.yaml gives the compose Prometheus:
# the $datasource variable's default. Panels name the variable, so the same JSON works in any
# Grafana whose Prometheus scrapes a mesh (pick it in the dashboard's Data source list).
DATASOURCE_UID = "meshserve-prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Grafana picks a rate window of at least four scrapes for the dashboard's time range.
RATE = "$__rate_interval"


def target(expr: str, legend: str = "", *, instant: bool = False, exemplar: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).datasource(DATASOURCE)
    if legend:
        query = query.legend_format(legend)
    if exemplar:  # latency buckets carry trace ids (meshserve/observability/metrics.py)
        query = query.exemplar(True)
    return query.instant() if instant else query.range()


def _with_targets(panel, queries: list[prometheus.Dataquery]):
    for ref, query in zip("ABCDEFGH", queries):
        panel = panel.with_target(query.ref_id(ref))
    return panel.datasource(DATASOURCE)


def graph(title: str, description: str, unit: str, *queries: prometheus.Dataquery,
          width: int = 12, height: int = 8, stacked: bool = False) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).unit(unit)
             .fill_opacity(10).line_width(1).show_points(common.VisibilityMode.NEVER).span(width).height(height)
             .legend(shared.VizLegendOptions().show_legend(True)
                     .display_mode(common.LegendDisplayMode.TABLE).placement(common.LegendPlacement.BOTTOM)
                     .calcs(["lastNotNull", "max"])))
    if stacked:
        panel = panel.stacking(shared.StackingConfig().mode(common.StackingMode.NORMAL))
    return _with_targets(panel, list(queries))


def single(title: str, description: str, unit: str, query: prometheus.Dataquery, *, width: int = 4,
           thresholds: list[tuple[float | None, str]] = ((None, "green"),)) -> stat.Panel:
    steps = [model.Threshold(value=value, color=color) for value, color in thresholds]
    panel = (stat.Panel().title(title).description(description).unit(unit).span(width).height(4)
             .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.AREA)
             .thresholds(dashboard.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps)))
    return _with_targets(panel, [query])


def listing(title: str, description: str, query: prometheus.Dataquery, *, width: int = 24,
            height: int = 8) -> table.Panel:
    """A table of an instant query's series: one row per label set, its value last."""
    panel = table.Panel().title(title).description(description).span(width).height(height)
    return _with_targets(panel, [query.format(PromQueryFormat.TABLE)])


def datasource_variable() -> dashboard.DatasourceVariable:
    return (dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
            .current(model.VariableOption(selected=True, text="Prometheus", value=DATASOURCE_UID)))


def model_variable(metric: str) -> dashboard.QueryVariable:
    """$model: every model the metric has series of, refreshed when the time range changes."""
    return (dashboard.QueryVariable("model").label("Model").datasource(DATASOURCE)
            .query(f"label_values({metric}, model)").refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC))


def new_dashboard(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (dashboard.Dashboard(title).uid(uid).description(description).tags(["meshserve"])
            .refresh("10s").time("now-1h", "now").timezone("browser").editable()
            .tooltip(model.DashboardCursorSync.CROSSHAIR).with_variable(datasource_variable())
            .link(dashboard.DashboardLink("meshserve").type(model.DashboardLinkType.DASHBOARDS)
                  .tags(["meshserve"]).as_dropdown(True).include_vars(True).keep_time(True)))


def add_rows(board: dashboard.Dashboard, rows: list[tuple[str, list[Any]]]) -> dashboard.Dashboard:
    for title, panels in rows:
        board = board.with_row(dashboard.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board


def to_json(board: dashboard.Dashboard) -> str:
    """The dashboard as Grafana's JSON, with panel ids numbered in order so the text is stable."""
    document = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for number, panel in enumerate(document.get("panels", []), start=1):
        panel["id"] = number
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
