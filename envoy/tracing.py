"""Envoy's OpenTelemetry tracer on both listeners, rendered only when tracing is on.

Tracing is on when OTEL_TRACES_EXPORTER includes otlp (the same variable the router and
adapters read); Envoy then exports its spans over OTLP/gRPC to OTEL_EXPORTER_OTLP_[TRACES_]
ENDPOINT through a cluster of its own, and continues the caller's W3C `traceparent`:
- front listener: a client's sampled traceparent is followed; a request without one starts a
  trace with the OTEL_TRACES_SAMPLER[_ARG] ratio; health and readiness calls start none;
- mesh listener: only continues the router's trace (its own sampling is 0), so the router's
  readiness questions never start traces, and every mirrored (shadow) copy joins its
  primary's trace as a child of the same mesh span.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from meshserve.core.settings import get_tracing_settings
from meshserve.envoy.fragments import http2_upstream, load_assignment

TRACER = "envoy.tracers.opentelemetry"
TRACER_CONFIG = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"
COLLECTOR_CLUSTER = "opentelemetry_collector"
# Calls that only ask whether something is up: traced, they would bury the inferences.
UNTRACED_PATHS = r"/grpc\.health\.v1\.Health/.*|/inference\.GRPCInferenceService/(ServerLive|ServerReady|ModelReady)"
# REST's in a filter of their own: RE2 refuses one program above 100 instructions.
UNTRACED_REST_PATHS = r"/v2/(health/.*|models/.*/ready)"
UUID_REQUEST_ID = "type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig"
HEALTH_CHECK_FILTER = "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck"
SAMPLERS = "type.googleapis.com/envoy.extensions.tracers.opentelemetry.samplers.v3."


def tracing_enabled() -> bool:
    return "otlp" in get_tracing_settings().exporters


def collector_address() -> str:
    """host:port of the OTLP/gRPC receiver, from the endpoint URL (http://host:port)."""
    endpoint = get_tracing_settings().traces_endpoint
    parsed = urlparse(endpoint if "//" in endpoint else f"//{endpoint}")
    return f"{parsed.hostname or 'localhost'}:{parsed.port or 4317}"


def request_id_extension() -> dict[str, Any]:
    """Sample without looking at x-request-id: the router owns request ids, so Envoy neither makes
    one nor reads a sampling decision into one (with no id, Envoy would trace nothing)."""
    return {"typed_config": {"@type": UUID_REQUEST_ID, "pack_trace_reason": False,
                             "use_request_id_for_trace_sampling": False}}


def listener_tracing(root_ratio: float) -> dict[str, Any]:
    """The `tracing` block of one listener's connection manager; ROOT_RATIO of the requests
    that come without a trace start one."""
    service = f"{get_tracing_settings().service_name}-envoy"
    return {
        # One span per listener; a shadow copy still gets its own ("mirror"). Upstream spans
        # would double Envoy's spans for no new information.
        "spawn_upstream_span": False,
        "provider": {
            "name": TRACER,
            "typed_config": {
                "@type": TRACER_CONFIG,
                "grpc_service": {"envoy_grpc": {"cluster_name": COLLECTOR_CLUSTER}, "timeout": "1s"},
                "service_name": service,
                "sampler": sampler(root_ratio),
            },
        },
    }


def front_sampling_ratio() -> float:
    return get_tracing_settings().sampling_ratio


def health_check_filters() -> list[dict[str, Any]]:
    """Mark health and readiness calls (gRPC and REST) as health checks, which Envoy never traces;
    they still reach the router (pass-through), which answers them as before."""
    return [{"name": "envoy.filters.http.health_check", "typed_config": {
        "@type": HEALTH_CHECK_FILTER, "pass_through_mode": True,
        "headers": [{"name": ":path", "string_match": {"safe_regex": {"regex": paths}}}]}}
        for paths in (UNTRACED_PATHS, UNTRACED_REST_PATHS)]


def sampler(ratio: float) -> dict[str, Any]:
    """Follow the caller's sampled flag; sample RATIO of the traces that start here."""
    if ratio >= 1.0:
        root = {"name": "envoy.tracers.opentelemetry.samplers.always_on",
                "typed_config": {"@type": SAMPLERS + "AlwaysOnSamplerConfig"}}
    else:
        root = {"name": "envoy.tracers.opentelemetry.samplers.trace_id_ratio_based",
                "typed_config": {"@type": SAMPLERS + "TraceIdRatioBasedSamplerConfig",
                                 "sampling_percentage": {"numerator": int(ratio * 1_000_000),
                                                         "denominator": "MILLION"}}}
    return {"name": "envoy.tracers.opentelemetry.samplers.parent_based",
            "typed_config": {"@type": SAMPLERS + "ParentBasedSamplerConfig", "wrapped_sampler": root}}


def tracer_runtime() -> dict[str, Any]:
    """Envoy's runtime layers with its tracer's export batching. By default each worker exports
    every 5 spans, a gRPC call per 2 or 3 requests; in batches of up to 512, or each second, the
    export costs a small fraction of that, and spans still reach the collector within a second."""
    return {"layers": [
        {"name": "tracer", "static_layer": {"tracing.opentelemetry.min_flush_spans": 512,
                                            "tracing.opentelemetry.flush_interval_ms": 1000}},
        {"name": "admin", "admin_layer": {}},
    ]}


def collector_cluster() -> dict[str, Any]:
    return {
        "name": COLLECTOR_CLUSTER,
        "type": "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": load_assignment(COLLECTOR_CLUSTER, [collector_address()]),
        "typed_extension_protocol_options": http2_upstream(),
    }
