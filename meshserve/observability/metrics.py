"""The Prometheus metrics of a meshserve process, and the observer that feeds them.

Names and labels follow Prometheus conventions: counters end in `_total`, durations are
`_seconds` histograms, and every inference metric carries `model`, `version`, `role` and
(for counts) `code`, plus `side` (router or adapter) so the two views of one request never
add up by accident. Latency buckets carry the trace id as an exemplar, which Prometheus
sees when it asks for OpenMetrics.
"""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, start_http_server

from meshserve.core.observers import InferenceEvent
from meshserve.observability.call_context import current_trace_id

log = logging.getLogger("meshserve.metrics")
# The `_created` series double every counter's output; nobody queries them.
disable_created_metrics()

# From 0.5 ms (a cached Python model at its adapter) to 30 s (a slow remote runtime).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

INFERENCE_LABELS = ("side", "model", "version", "role")

REQUESTS = Counter("meshserve_requests", "Inferences answered or refused, by status code.",
                   (*INFERENCE_LABELS, "code"))
ERRORS = Counter("meshserve_request_errors", "Inferences that ended with a status other than OK.",
                 (*INFERENCE_LABELS, "code"))
LATENCY = Histogram("meshserve_request_duration_seconds",
                    "Time from receiving an inference to its answer, at this side of the mesh.",
                    INFERENCE_LABELS, buckets=LATENCY_BUCKETS)
STAGE_LATENCY = Histogram("meshserve_stage_duration_seconds",
                          "Time spent in one stage of an inference: check, decode, queue, predict, encode.",
                          (*INFERENCE_LABELS, "stage"), buckets=STAGE_BUCKETS)
BATCH_SIZE = Histogram("meshserve_batch_size", "Requests served by one coalesced predict call (micro-batching).",
                       ("model", "version"), buckets=BATCH_BUCKETS)
SHED = Counter("meshserve_shed_requests", "Inferences refused at once because the mesh was at capacity for "
               "their variant (Envoy's circuit breakers), by the variant's model, version and role.",
               ("model", "version", "role"))
IN_FLIGHT = Gauge("meshserve_in_flight_requests", "Inference calls being served now.", ("side", "model"))
QUEUE_DEPTH = Gauge("meshserve_queue_depth", "Requests waiting for a micro-batch.", ("model", "version"))
SPANS_EXPORTED = Counter("meshserve_spans_exported", "Spans handed to the trace exporter successfully.")
SPANS_DROPPED = Counter("meshserve_spans_dropped",
                        "Spans lost: the export queue was full or the exporter failed (receiver down or slow).",
                        ("reason",))
RECORDS_NOT_STORED = Counter(
    "meshserve_records_store_failures", "Recorder passes that could not store what they read from the spools "
    "(the records store is down or refuses); the records stay spooled and are stored once it takes them.")
RESTARTS = Counter("meshserve_process_restarts", "Restarts of a process of the mesh after it exited.",
                   ("process", "model", "version"))

STAGES = ("check", "decode", "queue", "predict", "encode")
MAX_SERIES = 256  # (model, version) pairs a process labels its metrics with


class MetricsObserver:
    """Counts and times every inference of one side of the mesh."""

    before_answer = False

    def __init__(self, side: str):
        self.side = side
        self._series: set[tuple[str, str]] = set()

    def _model_version(self, event: InferenceEvent) -> tuple[str, str]:
        """Model and version labels. A refused request carries whatever names its client chose, so
        past MAX_SERIES pairs (or for names no person would write) they count under "(other)":
        made-up names cannot grow the metrics without bound."""
        pair = (event.model, event.version)
        if pair in self._series:
            return pair
        if len(self._series) < MAX_SERIES and len(event.model) <= 128 and len(event.version) <= 64 and \
                event.model.isprintable() and event.version.isprintable():
            self._series.add(pair)
            return pair
        return "(other)", "(other)"

    def observe(self, event: InferenceEvent) -> None:
        model, version = self._model_version(event)
        labels = (self.side, model, version, event.call.role)
        code = event.code.name
        REQUESTS.labels(*labels, code).inc()
        if code != "OK":
            ERRORS.labels(*labels, code).inc()
        if event.shed:
            SHED.labels(model, version, event.call.role).inc()
        trace_id = current_trace_id()
        total = event.timings.get("total")
        if total is not None:
            LATENCY.labels(*labels).observe(total, {"trace_id": trace_id} if trace_id else None)
        for stage in STAGES:
            seconds = event.timings.get(stage)
            if seconds is not None:
                STAGE_LATENCY.labels(*labels, stage).observe(seconds)
        if event.batch_size is not None:
            BATCH_SIZE.labels(model, version).observe(event.batch_size)


def serve_metrics(listen: str) -> None:
    """Serve /metrics on LISTEN (host:port) from a thread; OpenMetrics (with exemplars) when asked."""
    host, _, port = listen.rpartition(":")
    start_http_server(int(port), addr=host or "127.0.0.1", registry=REGISTRY)
    log.info("metrics on http://%s/metrics", listen)
