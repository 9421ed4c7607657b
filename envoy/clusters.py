"""The watched cluster file: one cluster per deployed variant (its replicas, health checks,
outlier detection), one for the copies mirrored to it, one for its replicas' REST listeners,
plus an aggregate per variant when the model has a fallback. A Triton variant served straight
by Triton has Triton's ports as its endpoints and a cluster of its adapters' side taps."""

from __future__ import annotations

from typing import Any

from meshserve.envoy.fragments import AGGREGATE, CLUSTER, duration, http2_upstream, load_assignment
from meshserve.envoy.layout import (
    UpstreamAddresses, fallback_cluster, mirror_cluster, rest_cluster, tap_cluster, variant_cluster)
from meshserve.envoy.limits import DEFAULT_SLOTS, mirror_breakers, thresholds, variant_breakers
from meshserve.envoy.security import internal_upstream
from meshserve.spec.deployment_spec import DeploymentSpec, ModelDeployment

def _variant_cluster(model: str, version: str, deployment: ModelDeployment, addresses: list[str],
                     slots: int) -> dict[str, Any]:
    name = variant_cluster(model, version)
    return {
        "@type": CLUSTER,
        "name": name,
        "type": "STATIC",
        "connect_timeout": duration(deployment.timeouts.connect_s),
        "lb_policy": "LEAST_REQUEST",
        "load_assignment": load_assignment(name, addresses),
        "typed_extension_protocol_options": http2_upstream(),
        # Beyond its limits a request is refused at once rather than queued (envoy/limits.py).
        "circuit_breakers": variant_breakers(deployment, version, slots),
        # Active checks find a dead or not-yet-loaded replica; grpc.health.v1 is what adapters serve.
        "health_checks": [{
            "timeout": "1s",
            "interval": "2s",
            "unhealthy_interval": "1s",
            "no_traffic_interval": "5s",
            "unhealthy_threshold": 2,
            "healthy_threshold": 1,
            "grpc_health_check": {},
        }],
        # Passive checks act between probes. Only failures of the replica itself count: refused
        # or reset connections (local origin). Answers never do: Envoy reads a gRPC status as
        # an HTTP code, so DEADLINE_EXCEEDED is a 504 "gateway failure", yet the deadline is the
        # client's choice, and a few clients with tight deadlines would eject a healthy replica;
        # INTERNAL and INVALID_ARGUMENT say nothing about the replica. A replica that cannot
        # take work says so on its health service (NOT_SERVING), which the active checks read.
        "outlier_detection": {
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": 2,
            "enforcing_consecutive_local_origin_failure": 100,
            "consecutive_gateway_failure": 3,
            "enforcing_consecutive_gateway_failure": 0,
            "enforcing_consecutive_5xx": 0,
            "enforcing_success_rate": 0,
            "enforcing_local_origin_success_rate": 0,
            "interval": "1s",
            "base_ejection_time": "5s",
            "max_ejection_percent": 100,
        },
    }


def _rest_cluster(model: str, version: str, deployment: ModelDeployment, addresses: list[str], slots: int,
                  upstreams: UpstreamAddresses) -> dict[str, Any]:
    """The variant's replicas as REST listeners: HTTP/1.1, one connection per request in flight,
    health read from the binding's own readiness (200 ready, 400 not)."""
    name = rest_cluster(model, version)
    cluster = _variant_cluster(model, version, deployment, [upstreams.rest_of[a] for a in addresses
                                                            if a in upstreams.rest_of], slots)
    del cluster["typed_extension_protocol_options"]
    cluster["name"] = name
    cluster["load_assignment"]["cluster_name"] = name
    cluster["health_checks"] = [{**cluster["health_checks"][0], "grpc_health_check": None}]
    del cluster["health_checks"][0]["grpc_health_check"]
    cluster["health_checks"][0]["http_health_check"] = {"path": "/v2/health/ready"}
    breakers = cluster["circuit_breakers"]["thresholds"][0]
    breakers["max_connections"] = breakers["max_requests"]
    return cluster


# Each tap stream stays open for a while after its request (Envoy's deferred close); at Envoy's
# default of 1024 requests in flight, streams beyond it were dropped without a word under load.
TAP_IN_FLIGHT = 100_000


def _tap_cluster(model: str, version: str, addresses: list[str]) -> dict[str, Any]:
    name = tap_cluster(model, version)
    return {"@type": CLUSTER, "name": name, "type": "STATIC", "connect_timeout": "1s",
            "lb_policy": "ROUND_ROBIN", "load_assignment": load_assignment(name, addresses),
            "typed_extension_protocol_options": http2_upstream(),
            "circuit_breakers": thresholds(TAP_IN_FLIGHT, TAP_IN_FLIGHT)}


def _fallback_cluster(model: str, version: str, fallback: str, deployment: ModelDeployment,
                      slots: int) -> dict[str, Any]:
    return {
        "@type": CLUSTER,
        "name": fallback_cluster(model, version),
        "connect_timeout": duration(deployment.timeouts.connect_s),
        "lb_policy": "CLUSTER_PROVIDED",
        # Requests routed through the aggregate count against its own breakers, not the
        # variant's: the same limits, and room for the retries that move to the fallback.
        "circuit_breakers": variant_breakers(deployment, version, slots),
        "cluster_type": {
            "name": "envoy.clusters.aggregate",
            "typed_config": {"@type": AGGREGATE,
                             "clusters": [variant_cluster(model, version), variant_cluster(model, fallback)]},
        },
    }


def render_clusters(spec: DeploymentSpec, upstreams: UpstreamAddresses, mesh_secret: str = "") -> dict[str, Any]:
    """The watched cluster file: one cluster per deployed variant, plus fallback aggregates; with a
    MESH_SECRET (EnvoyLayout.mesh_secret), health checks of the mesh's own servers carry it."""
    resources = []
    for model, deployment in sorted(spec.models.items()):
        for version in deployment.replicas:
            addresses = upstreams.variants.get((model, version))
            if addresses is None:  # an empty list is a variant scaled to zero
                raise ValueError(f"no addresses for {model} version {version}")
            slots = upstreams.slots.get((model, version), DEFAULT_SLOTS)
            served_by = [upstreams.direct_of.get(a, a) for a in addresses]  # a Triton replica: its Triton
            variant = _variant_cluster(model, version, deployment, served_by, slots)
            resources.append(variant if served_by != addresses else internal_upstream(variant, spec,
                                                                                       mesh_secret=mesh_secret))
            # Every version, not only the spec's shadows: a rollout may mirror to any of them. Copies
            # go to the adapters even of a Triton variant: no tap sees a copy, the adapter records it.
            mirror = {**_variant_cluster(model, version, deployment, addresses, slots),
                      "name": mirror_cluster(model, version),
                      "load_assignment": load_assignment(mirror_cluster(model, version), addresses),
                      "circuit_breakers": mirror_breakers(deployment, version, slots)}
            resources.append(internal_upstream(mirror, spec, mesh_secret=mesh_secret))
            taps = [upstreams.tap_of[a] for a in addresses if a in upstreams.tap_of]
            if (model, version) in upstreams.tapped():
                resources.append(_tap_cluster(model, version, taps))
            if upstreams.rest_of:
                resources.append(internal_upstream(_rest_cluster(model, version, deployment, addresses, slots, upstreams),
                                                   spec, alpn="http/1.1", mesh_secret=mesh_secret))
        if deployment.fallback is not None:
            # Every deployed version, shadows too: a rollout may give a shadow primary traffic.
            for version in deployment.replicas:
                if version != deployment.fallback:
                    slots = upstreams.slots.get((model, version), DEFAULT_SLOTS)
                    resources.append(_fallback_cluster(model, version, deployment.fallback, deployment, slots))
    return {"resources": resources}
