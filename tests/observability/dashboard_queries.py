"""Every query of meshserve's Grafana dashboards and alerting rules, evaluated on a real Prometheus
that scrapes a running mesh (tests/observability/watched_mesh.py), the way Grafana and the
rule evaluator would send them.

A query must evaluate without error and return data. It may come back empty only when a
series it reads does not exist yet for a reason the mesh under test does not produce
(CONDITIONAL: no record lost, no outcome reported, no micro-batching...), or when it is a
filter (`== 1`, `> 600`: what is alerting now) over series that exist.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import yaml
from conftest import ROOT
from metric_names import metrics_read_by

from meshserve.observability.dashboards import rendered

RULES = sorted((ROOT / "compose" / "prometheus").glob("*-alerts.yml"))
# Series that exist only once something happens that the watched mesh does not make happen.
CONDITIONAL = {
    "meshserve_quality_": "live quality needs outcomes reported",
    "meshserve_drift_": "the drift monitor publishes after its first check",
    "meshserve_batch_size_": "only models with micro-batching",
    "meshserve_queue_depth": "only models with micro-batching",
    "meshserve_shed_requests_total": "only when Envoy's circuit breakers refuse",
    "meshserve_records_lost_total": "only once a record is lost",
    "meshserve_tap_lost_records_total": "only Triton's side tap, once it loses one",
    "meshserve_spans_dropped_total": "only once the trace exporter drops spans",
    "meshserve_feature_events_dropped_total": "only once an adapter falls behind",
    "meshserve_shadow_": "the router publishes agreement after its judging pass (every 15 s)",
}


@dataclass
class Query:
    where: str  # dashboard and panel, or rules file and rule
    expr: str


def dashboard_queries() -> list[Query]:
    queries = []
    for name, text in rendered().items():
        for panel in json.loads(text)["panels"]:
            queries += [Query(f"{name}: {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
    return queries


def rule_queries() -> list[Query]:
    return [Query(f"{path.name}: {rule.get('alert') or rule.get('record')}", rule["expr"])
            for path in RULES for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def substituted(expr: str, model: str, rate_interval: str = "5m") -> str:
    """EXPR as Grafana sends it, its variables replaced. $__rate_interval is a few scrapes in
    Grafana; here by default a window wide enough to hold two scrapes of a series even on a busy machine."""
    return expr.replace("$__rate_interval", rate_interval).replace("$model", model)


def is_filter(expr: str) -> bool:
    """A comparison with a number (`== 1`, `> 600`): empty while nothing is alerting."""
    return re.search(r"(?:==|!=|>=|<=|[<>])\s*-?[\d.]", expr) is not None


def model_values(address: str, variable_query: str) -> list[str]:
    """What Grafana lists for a `label_values(SELECTOR, model)` variable."""
    selector = variable_query.removeprefix("label_values(").rsplit(",", 1)[0]
    url = f"http://{address}/api/v1/label/model/values?{urllib.parse.urlencode({'match[]': selector})}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)["data"]


def problems(prometheus, queries: list[Query], model: str) -> list[str]:
    """What is wrong with QUERIES on PROMETHEUS now; empty when every one is fine."""
    found = []
    for query in queries:
        expr = substituted(query.expr, model)
        try:
            result = prometheus.query(expr)
        except urllib.error.HTTPError as exc:
            found.append(f"{query.where}: Prometheus refused {expr!r}: {exc.read().decode()[:300]}")
            continue
        if result:
            continue
        absent = {m for m in metrics_read_by(expr) if not prometheus.query(f"count({m})")}
        unexplained = {m for m in absent if not any(m.startswith(prefix) for prefix in CONDITIONAL)}
        if unexplained:
            found.append(f"{query.where}: no series of {sorted(unexplained)} in Prometheus ({expr})")
        elif not absent and not is_filter(expr):
            found.append(f"{query.where}: every series it reads exists, yet it returned nothing ({expr})")
    return found


def settled_problems(prometheus, queries: list[Query], model: str, timeout: float = 60.0) -> list[str]:
    """problems(), asked again until there are none or TIMEOUT passes: a rate needs two scrapes
    of a series, and a busy machine's scrapes come late."""
    deadline = time.monotonic() + timeout
    while (found := problems(prometheus, queries, model)) and time.monotonic() < deadline:
        time.sleep(2)
    return found


def conditional_reasons(prometheus, queries: list[Query]) -> dict[str, str]:
    """The CONDITIONAL series these queries read that the mesh has not produced, with why."""
    missing = {}
    for query in queries:
        for metric in metrics_read_by(substituted(query.expr, "")):
            prefix = next((p for p in CONDITIONAL if metric.startswith(p)), None)
            if prefix and not prometheus.query(f"count({metric})"):
                missing[metric] = CONDITIONAL[prefix]
    return missing


def model_variable_query() -> str:
    board = json.loads(rendered()["meshserve-model.json"])
    return next(v["query"] for v in board["templating"]["list"] if v["name"] == "model")
