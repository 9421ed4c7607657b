"""A whole mesh (`meshserve up`: Envoy, router, adapters of every world) seen from outside:
its traces at a real OTLP receiver, its metrics through a real Prometheus."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest
from models.variant_traffic import within_binomial_interval
from watched_mesh import (  # noqa: F401  (fixtures)
    MEAN_RADIUS_RANGE, SHADOW, SPLIT, breast_cancer_request, front, observed_mesh, otlp, prometheus, tensor_request,
    trailers)

pytestmark = pytest.mark.slow

ROWS = np.random.default_rng(7).uniform(5, 25, size=(1, 30))


def new_traceparent() -> tuple[str, str, str]:
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def by_id(spans):
    return {s.span_id: s for s in spans}


def ancestors(span, spans_by_id):
    chain = []
    while span.parent_id in spans_by_id:
        span = spans_by_id[span.parent_id]
        chain.append(span)
    return chain


def test_one_request_with_a_client_traceparent_is_one_connected_trace(front, otlp):
    traceparent, trace_id, client_span = new_traceparent()
    request_id = uuid.uuid4().hex
    response, call = front.ModelInfer.with_call(
        breast_cancer_request(ROWS), metadata=[("traceparent", traceparent), ("x-request-id", request_id)])
    assert trailers(call)["x-meshserve-trace-id"] == trace_id

    def complete(_):
        spans = otlp.trace(trace_id)
        ids = {s.span_id for s in spans}
        adapters = [s for s in spans if s.service == "meshserve-adapter" and s.name.startswith("ModelInfer")]
        # Envoy sends its spans in batches, at least every 5 s, and one request's spans may be
        # split between two batches: wait until no span's parent is still missing.
        return len(adapters) >= 2 and any(s.name == "predict python" for s in spans) and \
            any(s.parent_id == client_span for s in spans) and sum(s.service == "meshserve-envoy" for s in spans) >= 2 \
            and all(s.parent_id in ids or s.parent_id == client_span for s in spans)
    otlp.wait_for(complete, timeout=20)
    spans = otlp.trace(trace_id)
    spans_by_id = by_id(spans)

    # Exactly one trace: every span of this request, wherever it was made, carries the client's trace id.
    tagged = [s for s in otlp.spans if s.attributes.get("meshserve.request_id") == request_id]
    assert {s.trace_id for s in tagged} == {trace_id}
    roots = [s for s in spans if s.parent_id not in spans_by_id]
    assert [r.parent_id for r in roots] == [client_span], roots
    assert roots[0].service == "meshserve-envoy"

    # One proxy hop: Envoy's front span, then the adapter that answered; no Python in between.
    primary = next(s for s in spans if s.service == "meshserve-adapter" and s.name.startswith("ModelInfer")
                   and s.attributes["meshserve.role"] != "shadow")
    assert primary.attributes["meshserve.model"] == "breast-cancer"
    assert primary.attributes["meshserve.version"] == response.model_version
    assert primary.attributes["meshserve.request_id"] == request_id
    assert primary.attributes["meshserve.status"] == "OK"
    assert primary.attributes["meshserve.role"] == ("primary" if response.model_version == "1" else "canary")
    assert spans_by_id[primary.parent_id] is roots[0]
    assert not [s for s in spans if s.service == "meshserve-router"]
    stages = {s.name: s for s in spans if s.parent_id == primary.span_id}
    assert set(stages) == {"predict python"}, stages  # the other stages are attributes unless asked for
    assert stages["predict python"].attributes["meshserve.runtime"] == "python"
    assert {"meshserve.decode_ms", "meshserve.predict_ms", "meshserve.encode_ms"} <= set(primary.attributes)


def test_the_shadow_copy_is_in_the_same_trace_marked_shadow(front, otlp):
    traceparent, trace_id, _ = new_traceparent()
    front.ModelInfer(breast_cancer_request(ROWS), metadata=[("traceparent", traceparent)])
    otlp.wait_for(lambda _: any(s.attributes.get("meshserve.role") == "shadow" for s in otlp.trace(trace_id))
                  and any(s.name == "mirror" for s in otlp.trace(trace_id)), timeout=20)
    spans = otlp.trace(trace_id)
    shadow = next(s for s in spans if s.attributes.get("meshserve.role") == "shadow")
    assert shadow.service == "meshserve-adapter"
    assert shadow.name == "ModelInfer shadow"
    assert shadow.attributes["meshserve.version"] == SHADOW
    chain = ancestors(shadow, by_id(spans))
    assert chain[0].name == "mirror" and chain[0].attributes["upstream_cluster"] == f"mirror|breast-cancer|{SHADOW}"
    assert chain[-1].service == "meshserve-envoy" and chain[-1].name == "ingress"  # the front's span


def test_a_client_without_traceparent_gets_a_trace_and_its_id(front, otlp):
    _, call = front.ModelInfer.with_call(breast_cancer_request(ROWS))
    trace_id = trailers(call)["x-meshserve-trace-id"]
    assert len(trace_id) == 32
    otlp.wait_for(lambda _: {"meshserve-envoy", "meshserve-adapter"} <= {s.service for s in otlp.trace(trace_id)},
                  timeout=20)


def test_a_client_that_samples_its_trace_out_gets_no_spans_and_no_trace_id(front, otlp):
    _, trace_id, span_id = new_traceparent()
    _, call = front.ModelInfer.with_call(breast_cancer_request(ROWS),
                                         metadata=[("traceparent", f"00-{trace_id}-{span_id}-00")])
    assert "x-meshserve-trace-id" not in trailers(call)
    # A later sampled request's spans arrive; none of the unsampled one's do.
    traceparent, later, _ = new_traceparent()
    front.ModelInfer(breast_cancer_request(ROWS), metadata=[("traceparent", traceparent)])
    otlp.wait_for(lambda _: any(s.service == "meshserve-adapter" for s in otlp.trace(later)), timeout=20)
    assert otlp.trace(trace_id) == []


def test_a_refused_request_has_its_status_and_error_on_its_spans(front, otlp):
    traceparent, trace_id, _ = new_traceparent()
    bad = breast_cancer_request(np.zeros((1, 29)))
    with pytest.raises(grpc.RpcError) as refused:
        front.ModelInfer(bad, metadata=[("traceparent", traceparent)])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    otlp.wait_for(lambda _: any(s.service == "meshserve-adapter" for s in otlp.trace(trace_id)))
    adapter = next(s for s in otlp.trace(trace_id) if s.service == "meshserve-adapter")
    assert adapter.attributes["meshserve.status"] == "INVALID_ARGUMENT"
    assert "features" in adapter.attributes["meshserve.error"]
    assert adapter.status_code == 2  # ERROR


def test_each_message_of_a_stream_is_a_span_inside_the_streams_span(front, otlp):
    traceparent, trace_id, _ = new_traceparent()
    requests = [breast_cancer_request(ROWS) for _ in range(2)]
    for i, request in enumerate(requests):
        request.id = f"stream-{trace_id}-{i}"
    answers = list(front.ModelStreamInfer(iter(requests), metadata=[("traceparent", traceparent)]))
    assert [a.infer_response.id for a in answers] == [r.id for r in requests]
    otlp.wait_for(lambda _: sum(s.service == "meshserve-router" and s.name.startswith("ModelInfer")
                                for s in otlp.trace(trace_id)) == 2, timeout=20)
    spans = otlp.trace(trace_id)
    stream = next(s for s in spans if s.service == "meshserve-router" and s.name == "ModelStreamInfer")
    messages = [s for s in spans if s.service == "meshserve-router" and s.name.startswith("ModelInfer")]
    assert {m.parent_id for m in messages} == {stream.span_id}
    assert sorted(m.attributes["meshserve.request_id"] for m in messages) == sorted(r.id for r in requests)


def test_health_and_readiness_calls_make_no_spans(observed_mesh, front, otlp):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from tritonclient.grpc import service_pb2 as pb

    with grpc.insecure_channel(observed_mesh.address) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    front.ServerLive(pb.ServerLiveRequest())
    front.ServerReady(pb.ServerReadyRequest())  # the router asks every model through the mesh
    front.ModelReady(pb.ModelReadyRequest(name="breast-cancer"))
    # Envoy exports in order: once a later inference's front span is in, the earlier calls' would be.
    traceparent, trace_id, client_span = new_traceparent()
    front.ModelInfer(breast_cancer_request(ROWS), metadata=[("traceparent", traceparent)])
    otlp.wait_for(lambda _: any(s.parent_id == client_span for s in otlp.trace(trace_id)), timeout=20)
    paths = {s.attributes.get("grpc.path", "") for s in otlp.spans} | {s.attributes.get("rpc.method", "") for s in otlp.spans}
    assert not [p for p in paths if "Health" in p or "Ready" in p or "Live" in p], paths


def test_a_rest_inference_is_traced_like_a_grpc_one_and_rest_health_makes_no_spans(observed_mesh, otlp):
    import http.client
    import json

    connection = http.client.HTTPConnection(observed_mesh.address, timeout=30)
    connection.request("GET", "/v2/health/ready")
    ready = connection.getresponse()
    ready.read()
    assert ready.status == 200
    traceparent, trace_id, client_span = new_traceparent()
    body = json.dumps({"inputs": [{"name": "features", "shape": list(ROWS.shape), "datatype": "FP64",
                                   "data": ROWS.tolist()}]})
    connection.request("POST", "/v2/models/breast-cancer/infer", body,
                       {"Content-Type": "application/json", "traceparent": traceparent, "x-request-id": "rest-traced"})
    response = connection.getresponse()
    assert response.status == 200, response.read()
    response.read()
    assert response.getheader("x-meshserve-trace-id") == trace_id
    connection.close()

    def complete(_):
        spans = otlp.trace(trace_id)
        # Envoy sends its spans in batches, so its front span may come last.
        adapters = [s for s in spans if s.service == "meshserve-adapter"]
        return any(s.parent_id == client_span for s in spans) and adapters and \
            all(ancestors(s, by_id(spans))[-1:] and ancestors(s, by_id(spans))[-1].parent_id == client_span
                for s in adapters)
    otlp.wait_for(complete, timeout=20)
    spans = otlp.trace(trace_id)
    # Straight from Envoy's front to the adapter's REST listener, as gRPC goes.
    answered = next(s for s in spans if s.service == "meshserve-adapter" and s.attributes.get("meshserve.role") != "shadow"
                    and s.name.startswith("ModelInfer"))
    assert answered.attributes["meshserve.request_id"] == "rest-traced"
    assert answered.attributes["meshserve.model"] == "breast-cancer" and answered.attributes["meshserve.status"] == "OK"
    assert by_id(spans)[answered.parent_id].service == "meshserve-envoy"
    assert not [s for s in spans if s.service == "meshserve-router"]
    assert not [s for s in otlp.spans if any("/v2/health" in str(v) for v in s.attributes.values())]


RUNTIME_REQUESTS = {
    "r": lambda: tensor_request("iris-randomforest", "measurements", np.array([[5.1, 3.5, 1.4, 0.2]]), "FP64"),
    "java": lambda: tensor_request("iris_j48", "measurements", np.array([[5.1, 3.5, 1.4, 0.2]]), "FP64"),
    "triton": lambda: tensor_request("digits-triton", "pixels", np.zeros((1, 64), dtype=np.float32), "FP32"),
}


@pytest.mark.parametrize("runtime", sorted(RUNTIME_REQUESTS))
def test_each_world_shows_its_runtime_span(runtime, observed_mesh, front, otlp):
    if runtime not in observed_mesh.worlds.values():
        pytest.skip(f"the {runtime} runtime cannot run on this machine (see scripts/setup.sh)")
    traceparent, trace_id, _ = new_traceparent()
    front.ModelInfer(RUNTIME_REQUESTS[runtime](), metadata=[("traceparent", traceparent)])
    otlp.wait_for(lambda _: any(s.name == f"predict {runtime}" for s in otlp.trace(trace_id)))
    spans = otlp.trace(trace_id)
    predict = next(s for s in spans if s.name == f"predict {runtime}")
    assert by_id(spans)[predict.parent_id].service == "meshserve-adapter"


ADAPTER_REQUESTS = 'sum by (version, role) (meshserve_requests_total{side="adapter",model="breast-cancer",code="OK"})'
MEAN_RADIUS = '{model="breast-cancer",feature="mean radius",role!="shadow"}'


def test_prometheus_counts_what_was_sent_split_in_the_canarys_proportion(front, prometheus):
    n = 200
    before = prometheus.by_label(ADAPTER_REQUESTS, "version")
    radius = np.random.default_rng(3).uniform(0, 40, size=n)  # some below and above the declared 5..30
    rows = np.tile(ROWS, (n, 1))
    rows[:, 0] = radius
    before_buckets = prometheus.by_label(f"sum by (le) (meshserve_feature_value_bucket{MEAN_RADIUS})", "le")
    before_out = prometheus.scalar(f"sum(meshserve_feature_out_of_range_total{MEAN_RADIUS})")
    before_values = prometheus.scalar(f"sum(meshserve_feature_values_total{MEAN_RADIUS})")
    for row in rows:
        front.ModelInfer(breast_cancer_request(row[None, :]))

    prometheus.wait_until(lambda: sum(prometheus.by_label(ADAPTER_REQUESTS, "version").values())
                          >= sum(before.values()) + 2 * n, what="the adapters' counts")
    after = prometheus.by_label(ADAPTER_REQUESTS, "version")
    sent = {v: after.get(v, 0) - before.get(v, 0) for v in after}
    assert sent[SHADOW] == n  # every request was mirrored
    assert sent["1"] + sent["2"] == n
    assert within_binomial_interval(int(sent["2"]), n, SPLIT["2"] / 100), sent

    prometheus.wait_until(lambda: prometheus.scalar(f"sum(meshserve_feature_values_total{MEAN_RADIUS})")
                          >= before_values + n, what="the feature counts")
    edges = np.linspace(*MEAN_RADIUS_RANGE, 11)
    buckets = prometheus.by_label(f"sum by (le) (meshserve_feature_value_bucket{MEAN_RADIUS})", "le")
    for edge in edges:
        le = repr(float(edge))
        assert buckets[le] - before_buckets.get(le, 0) == int((radius <= edge).sum()), le
    assert buckets["+Inf"] - before_buckets.get("+Inf", 0) == n
    outside = int(((radius < MEAN_RADIUS_RANGE[0]) | (radius > MEAN_RADIUS_RANGE[1])).sum())
    assert prometheus.scalar(f"sum(meshserve_feature_out_of_range_total{MEAN_RADIUS})") - before_out == outside


def test_latency_histograms_carry_trace_ids_as_exemplars(front, prometheus):
    traceparent, trace_id, _ = new_traceparent()
    front.ModelInfer(breast_cancer_request(ROWS), metadata=[("traceparent", traceparent)])
    query = 'meshserve_request_duration_seconds_bucket{side="adapter",model="breast-cancer"}'
    found = prometheus.wait_until(lambda: [e for series in prometheus.exemplars(query) for e in series["exemplars"]
                                           if e["labels"].get("trace_id") == trace_id], what="the exemplar")
    assert found


def test_envoy_and_the_launcher_are_scraped_too(prometheus):
    assert prometheus.scalar('up{job="meshserve-envoy"}') == 1
    assert prometheus.scalar('sum(envoy_cluster_upstream_rq_total{envoy_cluster_name="router"})') > 0
    assert prometheus.scalar('up{job="meshserve-launcher"}') == 1


def test_a_crashed_adapter_is_counted_as_a_restart(observed_mesh, prometheus):
    os.kill(child_pid(observed_mesh.proc.pid, f"breast_cancer_{SHADOW}"), signal.SIGKILL)
    restarts = f'meshserve_process_restarts_total{{process="adapter",model="breast-cancer",version="{SHADOW}"}}'
    prometheus.wait_until(lambda: prometheus.scalar(restarts) == 1, timeout=30, what="the restart")


def child_pid(parent: int, word: str) -> int:
    """The child process of PARENT whose command line contains WORD."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if ppid == parent and word in cmdline:
            return int(entry.name)
    raise AssertionError(f"no child of {parent} runs {word}")


def test_every_dashboard_and_alert_rule_query_evaluates_on_the_scraped_mesh(front, prometheus):
    """Grafana's queries (compose/grafana/dashboards, $model set to breast-cancer) and the alerting
    rules' expressions, on this mesh's real series after traffic (dashboard_queries.py)."""
    from dashboard_queries import conditional_reasons, dashboard_queries, model_values, model_variable_query, \
        rule_queries, settled_problems

    errors = 'meshserve_request_errors_total{side="adapter",model="breast-cancer"}'
    # An error every half second until Prometheus shows their rate: rate() reads through the
    # counter resets of adapters restarted by earlier tests, where a plain sum would go down.
    def erring() -> bool:
        with pytest.raises(grpc.RpcError):
            front.ModelInfer(breast_cancer_request(np.zeros((1, 29))))
        return prometheus.scalar(f"sum(rate({errors}[1m]))") > 0

    prometheus.wait_until(erring, what="the error rate", timeout=40)
    for row in np.random.default_rng(11).uniform(5, 25, size=(40, 1, 30)):
        front.ModelInfer(breast_cancer_request(row))
    assert "breast-cancer" in model_values(prometheus.address, model_variable_query())
    queries = dashboard_queries() + rule_queries()
    found = settled_problems(prometheus, queries, "breast-cancer")
    assert not found, "\n".join(found)
    print("empty for want of what this mesh does not do:", conditional_reasons(prometheus, queries))


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Panels that show data on any mesh with traffic: a dashboard drawing none of them is broken.
CORE_PANELS = {
    "meshserve-overview": {"Requests per second", "p99 latency", "Models", "Requests per second by model",
                           "p99 latency by model", "Share of traffic by version"},
    "meshserve-model": {"Requests per second by version", "Share of live traffic", "Latency p50 and p99 by version",
                        "p99 time per stage", "Replicas up by version"},
    "meshserve-health": {"Processes", "Resident memory", "CPU", "Requests per second at each listener",
                         "Healthy replicas per variant", "Upstream p99 per variant"},
}


def steady_traffic(observed_mesh, front, prometheus, seconds: float) -> None:
    """SECONDS of requests to every model, until Prometheus has scraped the last of them."""
    import time

    answered = 'sum(meshserve_requests_total{side="adapter",model="breast-cancer",role!="shadow"})'
    before, sent = prometheus.scalar(answered), 0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        front.ModelInfer(breast_cancer_request(ROWS))
        sent += 1
        for runtime in observed_mesh.worlds.values():
            front.ModelInfer(RUNTIME_REQUESTS[runtime]())
        time.sleep(0.05)
    prometheus.wait_until(lambda: prometheus.scalar(answered) >= before + sent, what="the last requests scraped")


def drawn_state(page, path: Path) -> tuple[dict, dict, int]:
    """PATH opened in PAGE once drawn: the page's counts, each panel's state, and the charts Chart.js made."""
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-panels-drawn]", timeout=15_000)
    counts = {k: int(v) for k, v in page.evaluate("({...document.body.dataset})").items()}
    states = page.evaluate("Object.fromEntries([...document.querySelectorAll('.panel')]"
                           ".map(p => [p.dataset.title, p.dataset.state]))")
    return counts, states, page.evaluate("Object.keys(Chart.instances).length")


def test_dashboards_drawn_in_place_of_grafana_show_the_scraped_mesh(observed_mesh, front, prometheus,
                                                                    tmp_path_factory):
    """Grafana is not part of the test run: dashboard_drawing.py lays each dashboard out as Grafana
    does, from this Prometheus's answers to the panels' own queries ($model: breast-cancer), and
    Chromium draws it. The screenshots go to the folder printed, and to $MESHSERVE_DOC_SCREENSHOTS
    (docs/images) when set, with Prometheus's own alerts page beside them."""
    import shutil

    from dashboard_drawing import draw_dashboards
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's chromium is not at {CHROMIUM} (scripts/setup.d/70-reports.sh installs it)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extras")
    docs = os.environ.get("MESHSERVE_DOC_SCREENSHOTS")
    # For the docs' pictures, traffic long enough that the charts have a history.
    steady_traffic(observed_mesh, front, prometheus, seconds=45 if docs else 4)
    folder = tmp_path_factory.mktemp("grafana-dashboards")
    print(f"\ndashboards drawn in place of Grafana: {folder}")
    drawn = draw_dashboards(prometheus.address, folder, model="breast-cancer")
    assert set(drawn) == set(CORE_PANELS)
    shots = {}
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        failures = []
        page.on("pageerror", lambda error: failures.append(str(error)))
        for uid, (path, panels) in drawn.items():
            counts, states, charts = drawn_state(page, path)
            shown = [p for p in panels if p.kind != "row"]
            assert counts["panelsDrawn"] == len(shown) == len(states), (uid, counts)
            assert counts["panelsWithData"] == sum(p.has_data for p in shown), (uid, counts)
            assert charts == sum(p.has_data for p in shown if p.kind in ("timeseries", "stat")), uid
            blank = {title for title, state in states.items() if state != "data"}
            assert not CORE_PANELS[uid] & blank, f"{uid}: no data in {sorted(CORE_PANELS[uid] & blank)}"
            print(f"{uid}: {counts['panelsWithData']} panels with data; no data in {sorted(blank)}")
            shots[f"grafana-{uid.removeprefix('meshserve-')}.png"] = shot = folder / f"{uid}.png"
            page.screenshot(path=str(shot), full_page=True)
        assert not failures, failures

        # Debian's Prometheus serves its classic pages only; upstream's serves /alerts itself.
        answer = page.goto(f"http://{prometheus.address}/alerts")
        if answer.status == 404:
            answer = page.goto(f"http://{prometheus.address}/classic/alerts")
        assert answer.ok and "MeshserveCanaryErrorRate" in page.content()
        shots["prometheus-alerts.png"] = folder / "prometheus-alerts.png"
        page.screenshot(path=str(shots["prometheus-alerts.png"]), full_page=True)
        browser.close()
    if docs:
        for name, shot in shots.items():
            shutil.copyfile(shot, Path(docs) / name)
