"""The watched route file of the mesh listener: per model, a weighted split among its
variants (canary), mirrors to its shadows, routes pinned to one version, and the role each
variant's traffic carries to the adapter."""

from __future__ import annotations

from typing import Any

from meshserve.core.mesh_protocol import (
    CANARY, MODEL_HEADER, PRIMARY, ROLE_HEADER, SHADOW, VARIANT_HEADER, VERSION_HEADER)
from meshserve.envoy.fragments import PREVIOUS_HOSTS, PREVIOUS_PRIORITIES, ROUTE_CONFIG, duration, set_header
from meshserve.envoy.layout import MESH_ROUTES, fallback_cluster, mirror_cluster, variant_cluster
from meshserve.router.deployment_spec import DeploymentSpec, ModelDeployment, Rollout

# Retry what failed because an adapter is gone before it took the request: a refused
# connection or stream, or the adapter's own UNAVAILABLE (a runtime restarting). Not `reset`:
# a connection that dies mid-request may be the request's own doing (input that crashes R
# or the JVM), and replaying it would take down every replica in turn. Those requests fail
# fast with UNAVAILABLE instead.
RETRY_ON = "connect-failure,refused-stream,reset-before-request,unavailable"


def _retry_policy(with_fallback: bool) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "retry_on": RETRY_ON,
        "num_retries": 2,
        "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                                  "typed_config": {"@type": PREVIOUS_HOSTS}}],
        "host_selection_retry_max_attempts": 3,
    }
    if with_fallback:
        # A retry skips the priority (sub-cluster) that just failed, i.e. moves to the fallback.
        policy["retry_priority"] = {"name": "envoy.retry_priorities.previous_priorities",
                                    "typed_config": {"@type": PREVIOUS_PRIORITIES, "update_frequency": 1}}
    return policy



def roles(rollout: Rollout) -> dict[str, str]:
    """primary for the variant with the largest weight (first listed on a tie), canary for the others."""
    ranked = sorted(rollout.weights.items(), key=lambda item: -item[1])
    primary = ranked[0][0] if ranked else None
    return {version: PRIMARY if version == primary else CANARY for version in rollout.weights}


def _route_timeouts(deployment: ModelDeployment) -> dict[str, Any]:
    request = duration(deployment.timeouts.request_s)
    # A client's own grpc-timeout is honoured, but never beyond the spec's limit.
    return {"timeout": request, "max_stream_duration": {"grpc_timeout_header_max": request}}


def _model_routes(model: str, deployment: ModelDeployment, rollout: Rollout) -> list[dict[str, Any]]:
    role_of = roles(rollout)
    model_match = {"name": MODEL_HEADER, "string_match": {"exact": model}}
    fallback = deployment.fallback

    def target(version: str) -> str:
        return fallback_cluster(model, version) if fallback and version != fallback else variant_cluster(model, version)

    routes = []
    # A named version goes to that variant only: no split, no shadow, no fallback.
    for version in deployment.replicas:
        routes.append({
            "name": f"{model}|pinned|{version}",
            "match": {"prefix": "/", "headers": [model_match, {"name": VERSION_HEADER, "string_match": {"exact": version}}]},
            "request_headers_to_add": [set_header(ROLE_HEADER, role_of.get(version, CANARY))],
            "response_headers_to_add": [set_header(VARIANT_HEADER, f"{version} {role_of.get(version, CANARY)}")],
            "route": {"cluster": variant_cluster(model, version), **_route_timeouts(deployment),
                      "retry_policy": _retry_policy(False)},
        })
    split: dict[str, Any] = {
        "clusters": [
            {"name": target(version), "weight": weight,
             "request_headers_to_add": [set_header(ROLE_HEADER, role_of[version])],
             "response_headers_to_add": [set_header(VARIANT_HEADER, f"{version} {role_of[version]}")]}
            for version, weight in rollout.weights.items() if weight > 0
        ],
    }
    action: dict[str, Any] = {"weighted_clusters": split, **_route_timeouts(deployment),
                              "retry_policy": _retry_policy(fallback is not None)}
    if deployment.routing_key_header:
        # The hash of the key picks the variant, so one key keeps its variant while weights stay.
        action["hash_policy"] = [{"header": {"header_name": deployment.routing_key_header}}]
        split["use_hash_policy"] = True
    mirrors = []
    for version, fraction in sorted(rollout.shadows.items()):
        if fraction <= 0:
            continue
        mirror: dict[str, Any] = {
            # Copies have a cluster of their own with small limits (envoy/limits.py).
            "cluster": mirror_cluster(model, version),
            # The copy is marked so the adapter records it as shadow; Envoy's own marker,
            # a -shadow suffix on :authority, is invisible to a grpcio server.
            "request_headers_mutations": [{"append": set_header(ROLE_HEADER, SHADOW)}],
        }
        if fraction < 1.0:
            mirror["runtime_fraction"] = {
                "default_value": {"numerator": round(fraction * 1_000_000), "denominator": "MILLION"},
                "runtime_key": f"meshserve.shadow.{model}.{version}",
            }
        mirrors.append(mirror)
    if mirrors:
        action["request_mirror_policies"] = mirrors
    routes.append({"name": f"{model}|split", "match": {"prefix": "/", "headers": [model_match]}, "route": action})
    return routes


def _not_served_route() -> dict[str, Any]:
    # A model or version the mesh does not serve: a gRPC answer, not a bare HTTP 404.
    return {
        "name": "not-served",
        "match": {"prefix": "/"},
        "direct_response": {"status": 200},
        "response_headers_to_add": [
            set_header("content-type", "application/grpc"),
            set_header("grpc-status", "5"),
            set_header("grpc-message", "model or version not served by this mesh (see x-meshserve-model/x-meshserve-version)"),
        ],
    }


def render_routes(spec: DeploymentSpec, rollouts: dict[str, Rollout], version_info: str = "1") -> dict[str, Any]:
    """The watched route file for the mesh listener, from the live rollouts."""
    routes: list[dict[str, Any]] = []
    for model, deployment in sorted(spec.models.items()):
        routes.extend(_model_routes(model, deployment, rollouts.get(model) or deployment.initial_rollout()))
    routes.append(_not_served_route())
    return {
        "version_info": version_info,
        "resources": [{
            "@type": ROUTE_CONFIG,
            "name": MESH_ROUTES,
            # Refuse a route file naming a cluster Envoy does not know, rather than 503 at runtime.
            "validate_clusters": True,
            # Envoy skips a route file whose content is unchanged, version_info included; the
            # version in metadata makes every rollout observable in the config dump.
            "metadata": {"filter_metadata": {"meshserve": {"routes_version": version_info}}},
            "virtual_hosts": [{"name": "models", "domains": ["*"], "routes": routes}],
        }],
    }
