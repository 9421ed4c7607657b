"""The side tap: Envoy's ext_proc filter in observability mode, copying each inference that goes
straight to Triton to the Triton adapter that serves it (adapters/triton/tap.py), which records,
measures and traces it.

Envoy never waits for the tap (observability mode; a tap that is gone or slow changes nothing
for the client), and only routes to a tapped variant enable it: the filter is on in the chain
with every other route turning it off, and each tapped variant's cluster entry naming its own
taps. Copies mirrored to a shadow go to the shadow's adapter, which records them itself.
"""

from __future__ import annotations

from typing import Any

from meshserve.envoy.layout import tap_cluster

FILTER_NAME = "envoy.filters.http.ext_proc"
EXT_PROC = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
EXT_PROC_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute"


def _service(cluster: str) -> dict[str, Any]:
    return {"envoy_grpc": {"cluster_name": cluster}, "timeout": "1s"}


def side_tap_filter(tapped: set[tuple[str, str]]) -> dict[str, Any]:
    """The filter for a listener's chain; routes choose the taps (tap_config)."""
    first = tap_cluster(*min(tapped))
    return {"name": FILTER_NAME, "typed_config": {
        "@type": EXT_PROC,
        "grpc_service": _service(first),
        "observability_mode": True,
        "failure_mode_allow": True,
        # Headers and bodies each way, and the answer's trailers (grpc-status); request trailers are not used.
        "processing_mode": {"request_header_mode": "SEND", "response_header_mode": "SEND",
                            "request_body_mode": "STREAMED", "response_body_mode": "STREAMED",
                            "request_trailer_mode": "SKIP", "response_trailer_mode": "SEND"},
    }}


def tap_config(model: str | None = None, version: str | None = None) -> dict[str, Any]:
    """Per-route (or per weighted cluster) filter config: copy to the variant's taps, or (no variant) none."""
    if model is None:
        return {FILTER_NAME: {"@type": EXT_PROC_PER_ROUTE, "disabled": True}}
    return {FILTER_NAME: {"@type": EXT_PROC_PER_ROUTE,
                          "overrides": {"grpc_service": _service(tap_cluster(model, version))}}}
