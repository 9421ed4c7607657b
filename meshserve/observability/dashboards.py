"""meshserve's Grafana dashboards, as code: what an operator opens every morning.

- `meshserve-overview`: the whole mesh at a glance (traffic, errors and latency per model,
  what drifts, what lost records, what restarted, which alerts fire).
- `meshserve-model`: one model's versions side by side (templated on $model): traffic and
  its split, errors, latency, shadow agreement, live quality, drift, replicas.
- `meshserve-health`: Envoy and the processes of the mesh (up, restarts, memory, CPU,
  listeners, upstream health, circuit breakers, lost records and telemetry).

Every query reads the series meshserve's processes serve (meshserve/observability/metrics.py,
judging_metrics.py, feature_stats.py, sidecars/drift/drift_metrics.py, sidecars/records/losses.py)
and Envoy's admin /stats/prometheus, through the targets file `meshserve up` writes. Inference
counts come from the adapters (`side="adapter"`): Envoy sends each request straight to the
adapter that answers it, so the router sees only streams. `meshserve grafana dashboards`
writes the JSON compose/grafana/dashboards/ holds; a test fails when that copy is stale.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard

from meshserve.observability.dashboard_panels import (
    RATE, add_rows, graph, listing, model_variable, new_dashboard, single, target, to_json)

ADAPTER = 'side="adapter"'
LIVE = f'{ADAPTER},role!="shadow"'  # what clients were answered with: shadows' answers are discarded
MODEL = f'{ADAPTER},model="$model"'
MODEL_LIVE = f'{MODEL},role!="shadow"'
OF_MODEL = 'model="$model"'  # series a process other than the adapter serves (batching, shedding)


def _rate(metric: str, selector: str) -> str:
    return f"rate({metric}{{{selector}}}[{RATE}])" if selector else f"rate({metric}[{RATE}])"


def _error_ratio(by: str, selector: str) -> str:
    """Errors over requests; a group without any error yet reads 0 rather than nothing."""
    requests = f"sum by ({by}) ({_rate('meshserve_requests_total', selector)})"
    errors = f"sum by ({by}) ({_rate('meshserve_request_errors_total', selector)})"
    return f"({errors} or {requests} * 0) / {requests}"


def _quantile(q: float, by: str, selector: str, metric: str = "meshserve_request_duration_seconds") -> str:
    groups = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({groups}) ({_rate(metric + '_bucket', selector)}))"


def overview() -> dashboard.Dashboard:
    board = new_dashboard("meshserve-overview", "meshserve: mesh overview",
                          "Every model of the mesh: traffic, errors, latency, drift, lost records, restarts, alerts.")
    now = [
        single("Requests per second", "Inferences answered to clients (shadows left out).", "reqps",
               target(f"sum({_rate('meshserve_requests_total', LIVE)})")),
        single("Error ratio", "Share of client inferences that ended with a status other than OK.", "percentunit",
               target(f"(sum({_rate('meshserve_request_errors_total', LIVE)}) or vector(0)) "
                      f"/ sum({_rate('meshserve_requests_total', LIVE)})"),
               thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")]),
        single("p99 latency", "99th percentile of the adapters' time to answer, all models.", "s",
               target(_quantile(0.99, "", LIVE))),
        single("Models", "Models with at least one adapter scraped.", "none",
               target('count(count by (model) (up{job="meshserve-adapter"}))')),
        single("Processes down", "Processes of the mesh Prometheus cannot scrape.", "none",
               target('count(up{job=~"meshserve-.*"} == 0) or vector(0)'), thresholds=[(None, "green"), (1, "red")]),
        single("Alerts firing", "meshserve's alerting rules now firing (compose/prometheus/*-alerts.yml).", "none",
               target('count(ALERTS{alertstate="firing"}) or vector(0)'), thresholds=[(None, "green"), (1, "red")]),
    ]
    traffic = [
        graph("Requests per second by model", "Client inferences per model.", "reqps",
              target(f"sum by (model) ({_rate('meshserve_requests_total', LIVE)})", "{{model}}")),
        graph("Errors per second by model and status", "Inferences refused or failed, by gRPC status.", "reqps",
              target(f"sum by (model, code) ({_rate('meshserve_request_errors_total', ADAPTER)})", "{{model}} {{code}}")),
        graph("p99 latency by model", "99th percentile of the adapters' time to answer.", "s",
              target(_quantile(0.99, "model", LIVE), "{{model}}")),
        graph("Share of traffic by version", "Each version's share of its model's client inferences: the live "
              "weights as served.", "percentunit",
              target(f"sum by (model, version, role) ({_rate('meshserve_requests_total', LIVE)}) / on (model) "
                     f"group_left sum by (model) ({_rate('meshserve_requests_total', LIVE)})",
                     "{{model}} {{version}} ({{role}})")),
    ]
    attention = [
        listing("Drift by feature (PSI)", "The drift monitor's latest score of every checked column, largest first; "
                "compare with meshserve_drift_threshold (docs/drift.md).",
                target("sort_desc(max by (model, version, role, feature) (meshserve_drift_score))", instant=True),
                width=12),
        listing("Live quality below its threshold", "Versions whose accuracy or error on reported outcomes is "
                "beyond meshserve.yaml's quality threshold.",
                target("max by (model, version, role, output) (meshserve_quality_alerting) == 1", instant=True),
                width=12),
        graph("Records lost", "Prediction records that could not be written, by reason (docs/records.md).", "short",
              target(f"sum by (model, reason) (increase(meshserve_records_lost_total[{RATE}]))", "{{model}} {{reason}}")),
        graph("Restarts", "Processes of the mesh restarted by the supervisor after exiting.", "short",
              target(f"sum by (process, model, version) (increase(meshserve_process_restarts_total[{RATE}]))",
                     "{{process}} {{model}} {{version}}")),
    ]
    return add_rows(board, [("Now", now), ("Traffic", traffic), ("Needs attention", attention)])


def model_versions() -> dashboard.Dashboard:
    board = new_dashboard("meshserve-model", "meshserve: a model's versions",
                          "One model's versions side by side: traffic, errors, latency, agreement, quality, drift.")
    board = board.with_variable(model_variable(f"meshserve_requests_total{{{ADAPTER}}}"))
    return add_rows(board, [("Traffic", _model_traffic()), ("Latency", _model_latency()),
                            ("Agreement and quality", _model_judging()), ("Drift and inputs", _model_drift())])


def _model_traffic() -> list:
    requests = f"sum by (version, role) ({_rate('meshserve_requests_total', MODEL)})"
    return [
        graph("Requests per second by version", "Every copy served, shadows included.", "reqps",
              target(requests, "{{version}} ({{role}})")),
        graph("Share of live traffic", "Each version's share of the client inferences: the weights as served.",
              "percentunit",
              target(f"sum by (version, role) ({_rate('meshserve_requests_total', MODEL_LIVE)}) "
                     f"/ ignoring (version, role) group_left "
                     f"sum({_rate('meshserve_requests_total', MODEL_LIVE)})", "{{version}} ({{role}})"),
              stacked=True),
        graph("Errors per second by status", "Inferences refused or failed, by version and gRPC status.", "reqps",
              target(f"sum by (version, role, code) ({_rate('meshserve_request_errors_total', MODEL)})",
                     "{{version}} ({{role}}) {{code}}")),
        graph("Error ratio by version", "A canary's ratio above its primary's is what MeshserveCanaryErrorRate "
              "pages on.", "percentunit", target(_error_ratio("version, role", MODEL), "{{version}} ({{role}})")),
    ]


def _model_latency() -> list:
    return [
        graph("Latency p50 and p99 by version", "The adapters' time to answer; the dots are exemplars "
              "carrying trace ids.", "s",
              target(_quantile(0.5, "version, role", MODEL), "p50 {{version}} ({{role}})", exemplar=True),
              target(_quantile(0.99, "version, role", MODEL), "p99 {{version}} ({{role}})", exemplar=True)),
        graph("p99 time per stage", "Where the time goes: check, decode, queue, predict, encode.", "s",
              target(_quantile(0.99, "version, stage", MODEL, "meshserve_stage_duration_seconds"),
                     "{{version}} {{stage}}")),
        graph("Mean batch size", "Requests served by one coalesced predict call (micro-batching only).", "short",
              target(f"sum by (version) ({_rate('meshserve_batch_size_sum', OF_MODEL)}) / sum by (version) "
                     f"({_rate('meshserve_batch_size_count', OF_MODEL)})", "{{version}}")),
        graph("Requests shed at capacity", "Refused at once by Envoy's circuit breakers.", "reqps",
              target(f"sum by (version, role) ({_rate('meshserve_shed_requests_total', OF_MODEL)})",
                     "{{version}} ({{role}})")),
    ]


def _model_judging() -> list:
    return [
        graph("Shadow agreement with the answering version", "Share of rows where the shadow's class agrees "
              "(the router's judging window, docs/compare.md).", "percentunit",
              target('max by (version, primary_version, output) (meshserve_shadow_agreement{model="$model"})',
                     "{{version}} vs {{primary_version}}: {{output}}")),
        graph("Pairs compared", "Requests answered by both a shadow and the version it copied.", "short",
              target('max by (version, primary_version) (meshserve_shadow_pairs{model="$model"})',
                     "{{version}} vs {{primary_version}}")),
        graph("Live accuracy", "Accuracy of class outputs on reported outcomes (docs/quality.md).", "percentunit",
              target('max by (version, role, output) (meshserve_quality_accuracy{model="$model"})',
                     "{{version}} ({{role}}) {{output}}")),
        graph("Live mean absolute error", "Of numeric outputs, on reported outcomes.", "short",
              target('max by (version, role, output) (meshserve_quality_mae{model="$model"})',
                     "{{version}} ({{role}}) {{output}}"),
              target('max by (version, role, output) (meshserve_quality_outcomes{model="$model"})',
                     "outcomes {{version}} ({{role}})")),
    ]


def _model_drift() -> list:
    inputs = 'model="$model",role!="shadow"'
    return [
        graph("Drift (PSI) by feature", "The drift monitor's score per column; it alerts past the threshold when "
              "its test agrees.", "short",
              target('max by (version, role, feature) (meshserve_drift_score{model="$model"})',
                     "{{version}} ({{role}}) {{feature}}"),
              target('max(meshserve_drift_threshold{model="$model"})', "threshold")),
        listing("Features drifting now", "Columns the drift monitor holds an alert on.",
                target('max by (version, role, feature) (meshserve_drift_alerting{model="$model"}) == 1', instant=True),
                width=12),
        graph("Inputs outside their declared limits", "Share of each feature's values outside model.yaml's "
              "limits.", "percentunit",
              target(f"sum by (version, feature) ({_rate('meshserve_feature_out_of_range_total', inputs)}) / "
                     f"sum by (version, feature) ({_rate('meshserve_feature_values_total', inputs)})",
                     "{{version}} {{feature}}")),
        graph("Replicas up by version", "Adapters of each version Prometheus scrapes.", "none",
              target('sum by (version) (up{job="meshserve-adapter",model="$model"})', "{{version}}"),
              target(f'sum by (version) (meshserve_in_flight_requests{{{MODEL}}})', "in flight {{version}}")),
    ]


def health() -> dashboard.Dashboard:
    board = new_dashboard("meshserve-health", "meshserve: Envoy and adapters",
                          "The processes of the mesh and Envoy: up, restarts, resources, listeners, upstreams.")
    return add_rows(board, [("Processes", _processes()), ("Envoy", _envoy()), ("Records and telemetry", _losses())])


def _processes() -> list:
    mesh = 'job=~"meshserve-.*"'
    return [
        listing("Processes", "Every process of the mesh (1 = scraped).", target(f"up{{{mesh}}}", instant=True),
                height=10),
        graph("Restarts in the last 15 minutes", "Three or more page (MeshserveAdapterRestartLoop).", "short",
              target("sum by (process, model, version) (increase(meshserve_process_restarts_total[15m]))",
                     "{{process}} {{model}} {{version}}")),
        graph("Resident memory", "Of every Python process (adapters, router, recorder, launcher).", "bytes",
              target(f"sum by (job, model, version, replica) (process_resident_memory_bytes{{{mesh}}})",
                     "{{job}} {{model}} {{version}} {{replica}}"),
              target("max(envoy_server_memory_allocated)", "envoy (allocated)")),
        graph("CPU", "Cores used per process.", "percentunit",
              target(f"sum by (job, model, version, replica) (rate(process_cpu_seconds_total{{{mesh}}}[{RATE}]))",
                     "{{job}} {{model}} {{version}} {{replica}}")),
        graph("In flight per adapter", "Inference calls being served now.", "short",
              target(f"sum by (model, version) (meshserve_in_flight_requests{{{ADAPTER}}})", "{{model}} {{version}}"),
              target("sum by (model, version) (meshserve_queue_depth)", "queued {{model}} {{version}}")),
    ]


def _envoy() -> list:
    variants = 'envoy_cluster_name=~"variant\\\\|.*"'
    return [
        graph("Requests per second at each listener", "front: clients; mesh: the router's calls.", "reqps",
              target(f"sum by (envoy_http_conn_manager_prefix) ({_rate('envoy_http_downstream_rq_total', '')})",
                     "{{envoy_http_conn_manager_prefix}}")),
        graph("Responses by class at each listener", "HTTP status classes (gRPC errors travel in 200s).", "reqps",
              target("sum by (envoy_http_conn_manager_prefix, envoy_response_code_class) "
                     f"({_rate('envoy_http_downstream_rq_xx', '')})",
                     "{{envoy_http_conn_manager_prefix}} {{envoy_response_code_class}}xx")),
        graph("Healthy replicas per variant", "Endpoints Envoy may send to, per model version.", "none",
              target(f"sum by (envoy_cluster_name) (envoy_cluster_membership_healthy{{{variants}}})",
                     "{{envoy_cluster_name}}")),
        graph("Upstream p99 per variant", "Envoy's time to an adapter's answer.", "ms",
              target(_quantile(0.99, "envoy_cluster_name", variants, "envoy_cluster_upstream_rq_time"),
                     "{{envoy_cluster_name}}")),
        graph("Refused by circuit breakers", "Requests over a variant's limits, answered at once.", "reqps",
              target(f"sum by (envoy_cluster_name) ({_rate('envoy_cluster_upstream_rq_pending_overflow', variants)})",
                     "{{envoy_cluster_name}}")),
        graph("Upstream timeouts and resets", "Per variant.", "reqps",
              target(f"sum by (envoy_cluster_name) ({_rate('envoy_cluster_upstream_rq_timeout', variants)})",
                     "timeout {{envoy_cluster_name}}"),
              target(f"sum by (envoy_cluster_name) ({_rate('envoy_cluster_upstream_cx_destroy_remote_with_active_rq', variants)})",
                     "reset {{envoy_cluster_name}}")),
    ]


def _losses() -> list:
    return [
        graph("Records lost per second", "Records a process could not spool, and requests Triton's side tap could "
              "not record (MeshserveRecordsLost pages on any).", "reqps",
              target(f"sum by (side, model, reason) (rate(meshserve_records_lost_total[{RATE}]))",
                     "{{side}} {{model}} {{reason}}"),
              target(f"sum by (model, reason) (rate(meshserve_tap_lost_records_total[{RATE}]))",
                     "tap {{model}} {{reason}}")),
        graph("Recorder passes the store refused, per second", "The records wait in the spools until the store "
              "takes them again (MeshserveRecordsNotStored pages on any).", "ops",
              target(f"sum by (instance) (rate(meshserve_records_store_failures_total[{RATE}]))", "{{instance}}")),
        graph("Telemetry dropped per second", "Spans the exporter lost, inferences left out of feature statistics.",
              "reqps",
              target(f"sum by (job, reason) (rate(meshserve_spans_dropped_total[{RATE}]))", "spans {{job}} {{reason}}"),
              target(f"sum by (model, version) (rate(meshserve_feature_events_dropped_total[{RATE}]))",
                     "features {{model}} {{version}}")),
    ]


DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "meshserve-overview": overview,
    "meshserve-model": model_versions,
    "meshserve-health": health,
}


def rendered() -> dict[str, str]:
    """File name -> the dashboard's JSON, as Grafana's file provisioning reads it."""
    return {f"{uid}.json": to_json(build()) for uid, build in DASHBOARDS.items()}


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        (folder / name).write_text(text)
        written.append(folder / name)
    return written
