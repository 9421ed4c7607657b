"""The bootstrap Envoy starts from: the front listener (clients -> a variant's replicas for
ModelInfer, the router for everything else), the mesh listener (router -> adapters), both
routed by the watched route file, the router cluster and admin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshserve.envoy.body_routing import body_routing_filter
from meshserve.envoy.fragments import HCM, ROUTER_FILTER, buffer_limit_bytes, http2_upstream, load_assignment, socket_address
from meshserve.envoy.layout import MESH_ROUTES, ROUTER_CLUSTER, ROUTER_REST_CLUSTER, EnvoyLayout, UpstreamAddresses
from meshserve.envoy.limits import (
    oversized_reply_mapper, router_in_flight, shed_reply_mapper, thresholds, unavailable_reply_mapper,
    variant_shed_reply_mapper)
from meshserve.envoy.side_tap import side_tap_filter
from meshserve.envoy.refusal_log import refusal_access_log
from meshserve.envoy.security import (
    internal_upstream, refused_model_mappers, secure_front, secure_mesh, security_clusters)
from meshserve.envoy.tracing import (
    collector_cluster, front_sampling_ratio, health_check_filters, listener_tracing, request_id_extension,
    tracer_runtime, tracing_enabled)
from meshserve.spec.deployment_spec import DeploymentSpec

def _path_source(path: Path) -> dict[str, Any]:
    return {"path_config_source": {"path": str(path), "watched_directory": {"path": str(path.parent)}},
            "resource_api_version": "V3"}


def _connection_manager(stat_prefix: str, codec: str, routing: dict[str, Any],
                        tracing: dict[str, Any] | None = None,
                        reply_mappers: list[dict[str, Any]] | None = None,
                        filters: list[dict[str, Any]] = (), access_log: list[dict[str, Any]] = ()) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM,
            "stat_prefix": stat_prefix,
            "codec_type": codec,
            # The router decides the request id: the client's header, else the request's id field.
            "generate_request_id": False,
            # The stream window is what Envoy buffers of an HTTP/2 request: the largest message
            # the mesh accepts (a larger one is answered RESOURCE_EXHAUSTED, oversized_reply_mapper).
            "http2_protocol_options": {"max_concurrent_streams": 1024,
                                       "initial_stream_window_size": min(buffer_limit_bytes(), 2**31 - 1)},
            "http_filters": [*(health_check_filters() if tracing else []), *filters,
                             {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_FILTER}}],
            **({"tracing": tracing, "request_id_extension": request_id_extension()} if tracing else {}),
            **({"local_reply_config": {"mappers": reply_mappers}} if reply_mappers else {}),
            **({"access_log": list(access_log)} if access_log else {}),
            **routing,
        },
    }


def _listener(name: str, address: str, manager: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "address": socket_address(address),
        # Envoy shares ports by default (SO_REUSEPORT): a second mesh on the same address would
        # silently take half of the first one's clients. Refuse a busy port instead.
        "enable_reuse_port": False,
        "per_connection_buffer_limit_bytes": buffer_limit_bytes(),
        "filter_chains": [{"filters": [manager]}],
    }


def _router_rest_cluster(addresses: list[str], spec: DeploymentSpec, in_flight: int) -> dict[str, Any]:
    # HTTP/1.1: one connection per request in flight, so connections are limited as requests are.
    breakers = thresholds(in_flight, in_flight)
    breakers["thresholds"][0]["max_connections"] = in_flight
    cluster = {"name": ROUTER_REST_CLUSTER, "type": "STATIC", "connect_timeout": "1s", "lb_policy": "LEAST_REQUEST",
               "load_assignment": load_assignment(ROUTER_REST_CLUSTER, addresses), "circuit_breakers": breakers}
    return internal_upstream(cluster, spec, alpn="http/1.1")


def render_bootstrap(layout: EnvoyLayout, spec: DeploymentSpec, upstreams: UpstreamAddresses) -> dict[str, Any]:
    mesh_routes = {"rds": {"route_config_name": MESH_ROUTES, "config_source": _path_source(layout.routes_path)}}
    front_replies = [oversized_reply_mapper(), *refused_model_mappers(), unavailable_reply_mapper(),
                     variant_shed_reply_mapper(), shed_reply_mapper()]
    tapped = upstreams.tapped()
    tap = [side_tap_filter(tapped)] if tapped else []  # inferences straight to Triton, copied to its adapter
    traced = tracing_enabled()
    router_limit = router_in_flight(spec, upstreams.slots)
    router_cluster = {
        "name": ROUTER_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "LEAST_REQUEST",
        "load_assignment": load_assignment(ROUTER_CLUSTER, upstreams.router),
        "typed_extension_protocol_options": http2_upstream(),
        # The router is one Python process: what is beyond its share is refused here, cheaply.
        "circuit_breakers": thresholds(*[router_limit] * 2),
    }
    return {
        "node": {"id": layout.node_id, "cluster": "meshserve"},
        "admin": {"address": socket_address(layout.admin)},
        "static_resources": {
            "listeners": [
                # AUTO: clients may speak HTTP/2 with prior knowledge (gRPC) or HTTP/1.1 (REST, health probes).
                # TLS, authentication and authorization from the spec's security section; the tracer when
                # tracing is on. The mesh listener only continues the router's traces (see envoy/tracing.py).
                # Both listeners route with the same watched table (routes.py).
                secure_front(_listener("front", layout.front, _connection_manager(
                    "front", "AUTO", mesh_routes, listener_tracing(front_sampling_ratio()) if traced else None,
                    reply_mappers=front_replies, filters=[body_routing_filter(), *tap],
                    access_log=[refusal_access_log(layout.refusal_log)] if layout.refusal_log else [])),
                    spec),
                secure_mesh(_listener("mesh", layout.mesh, _connection_manager(
                    "mesh", "HTTP2", mesh_routes, listener_tracing(0) if traced else None, filters=tap)), spec,
                    layout.mesh_secret),
            ],
            "clusters": [internal_upstream(router_cluster, spec),
                         *([_router_rest_cluster(upstreams.router_rest, spec, router_limit)] if upstreams.router_rest else []),
                         *security_clusters(spec),
                         *([collector_cluster()] if traced else [])],
        },
        "dynamic_resources": {"cds_config": _path_source(layout.clusters_path)},
        **({"layered_runtime": tracer_runtime()} if traced else {}),
    }
