"""The watched route file, shared by both listeners: per model, a weighted split among its
variants (canary), mirrors to its shadows, routes pinned to one version, and the role each
variant's traffic carries to the adapter; then what goes to the router.

At the front, the body-routing filter (body_routing.py) has put the model and version of a
unary ModelInfer into headers, so the model routes send it straight to a replica of its
variant: one proxy hop. Every other call (metadata, Triton's extensions, streams, the
control API, REST) carries no model header and falls through to the router. A model with a
variant scaled to zero is the exception: its inferences from the front go to the router,
which holds each one until a replica is up (the activator), and forwards it through the
mesh listener, where the same model routes apply."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meshserve.core.mesh_protocol import (
    CANARY, FRONT_HOP, HOP_HEADER, MODEL_HEADER, PRIMARY, ROLE_HEADER, SHADOW, VARIANT_HEADER, VERSION_HEADER)
from meshserve.envoy.fragments import PREVIOUS_HOSTS, PREVIOUS_PRIORITIES, ROUTE_CONFIG, duration, set_header
from meshserve.envoy.layout import (
    MESH_ROUTES, ROUTER_CLUSTER, ROUTER_REST_CLUSTER, fallback_cluster, mirror_cluster, rest_cluster, variant_cluster)
from meshserve.envoy.security import secure_routes
from meshserve.envoy.side_tap import tap_config
from meshserve.spec.deployment_spec import DeploymentSpec, ModelDeployment, Rollout

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


@dataclass(frozen=True)
class Binding:
    """How one binding's inferences reach a variant: how a call to the model (pinned to VERSION, or
    not) is matched, which cluster serves a version (and takes its mirrored copies), and whether
    the side tap of a version served straight by Triton sees it (gRPC only)."""

    name: str
    match: Callable[[str, str | None], dict[str, Any]]  # (model, version or None for the split) -> match
    cluster: Callable[[str, str], str]
    mirror: Callable[[str, str], str]
    tapped: frozenset[tuple[str, str]] = frozenset()

    def tap(self, model: str, version: str) -> dict[str, Any]:
        return {"typed_per_filter_config": tap_config(model, version) if (model, version) in self.tapped
                else tap_config()} if self.tapped else {}


def _grpc_match(model: str, version: str | None) -> dict[str, Any]:
    model_match = {"name": MODEL_HEADER, "string_match": {"exact": model}}
    # A version nobody serves is not found, never split: the split takes only calls naming none.
    version_match = ({"name": VERSION_HEADER, "present_match": False} if version is None
                     else {"name": VERSION_HEADER, "string_match": {"exact": version}})
    return {"prefix": "/", "grpc": {}, "headers": [model_match, version_match]}


def rest_infer_path(model: str, version: str = "") -> str:
    return f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"


def _rest_match(model: str, version: str | None) -> dict[str, Any]:
    return {"path": rest_infer_path(model, version or ""), "headers": [{"name": ":method",
                                                                        "string_match": {"exact": "POST"}}]}


def grpc_binding(tapped: set[tuple[str, str]] = frozenset()) -> Binding:
    return Binding("grpc", _grpc_match, variant_cluster, mirror_cluster, frozenset(tapped))


# The REST binding's inferences, by path, straight to the variants' REST listeners (their mirrored
# copies too); everything else of REST goes to the router.
REST = Binding("rest", _rest_match, rest_cluster, rest_cluster)


def _mirrors(model: str, rollout: Rollout, binding: Binding) -> list[dict[str, Any]]:
    mirrors = []
    for version, fraction in sorted(rollout.shadows.items()):
        if fraction <= 0:
            continue
        mirror: dict[str, Any] = {
            # gRPC copies have a cluster of their own with small limits (envoy/limits.py).
            "cluster": binding.mirror(model, version),
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
    return mirrors


def _model_routes(model: str, deployment: ModelDeployment, rollout: Rollout, binding: Binding) -> list[dict[str, Any]]:
    """A model's routes for one binding: a route per version for calls naming it, then the split."""
    role_of = roles(rollout)
    fallback = deployment.fallback if binding.name == "grpc" else None  # aggregates exist for gRPC only

    def target(version: str) -> str:
        return fallback_cluster(model, version) if fallback and version != fallback else binding.cluster(model, version)

    prefix = model if binding.name == "grpc" else f"{model}|{binding.name}"
    routes = []
    # A named version goes to that variant only: no split, no shadow, no fallback.
    for version in deployment.replicas:
        role = role_of.get(version, CANARY)
        routes.append({
            "name": f"{prefix}|pinned|{version}",
            "match": binding.match(model, version),
            "request_headers_to_add": [set_header(ROLE_HEADER, role)],
            "response_headers_to_add": [set_header(VARIANT_HEADER, f"{version} {role}")],
            "route": {"cluster": binding.cluster(model, version), **_route_timeouts(deployment),
                      "retry_policy": _retry_policy(False)},
            **binding.tap(model, version),
        })
    split: dict[str, Any] = {"clusters": [
        {"name": target(version), "weight": weight,
         "request_headers_to_add": [set_header(ROLE_HEADER, role_of[version])],
         "response_headers_to_add": [set_header(VARIANT_HEADER, f"{version} {role_of[version]}")],
         **binding.tap(model, version)}
        for version, weight in rollout.weights.items() if weight > 0]}
    action: dict[str, Any] = {"weighted_clusters": split, **_route_timeouts(deployment),
                              "retry_policy": _retry_policy(fallback is not None)}
    if deployment.routing_key_header:
        # The hash of the key picks the variant, so one key keeps its variant while weights stay.
        action["hash_policy"] = [{"header": {"header_name": deployment.routing_key_header}}]
        split["use_hash_policy"] = True
    mirrors = _mirrors(model, rollout, binding)
    if mirrors:
        action["request_mirror_policies"] = mirrors
    routes.append({"name": f"{prefix}|split", "match": binding.match(model, None), "route": action})
    return routes


def _activator_route(model: str, deployment: ModelDeployment) -> dict[str, Any]:
    """From the front, a model that may have no replica up goes through the router, which holds
    the call while one starts; the router's own calls (without the front's mark) take the model
    routes below. Model routes match gRPC only: the front also sets the model header of a REST
    inference (from its path, for the per-model rules), which the REST routes below carry."""
    return {
        "name": f"{model}|activator",
        "match": {"prefix": "/", "grpc": {}, "headers": [{"name": MODEL_HEADER, "string_match": {"exact": model}},
                                             {"name": HOP_HEADER, "string_match": {"exact": FRONT_HOP}}]},
        "route": {"cluster": ROUTER_CLUSTER, **_route_timeouts(deployment),
                  "retry_policy": {"retry_on": "connect-failure,refused-stream", "num_retries": 2}},
    }


def _not_found(name: str, match: dict[str, Any], message: str) -> dict[str, Any]:
    # A gRPC answer naming what is missing and what is served, not a bare HTTP 404.
    return {
        "name": name,
        "match": match,
        "direct_response": {"status": 200},
        "response_headers_to_add": [
            set_header("content-type", "application/grpc"),
            set_header("grpc-status", "5"),
            set_header("grpc-message", message),
        ],
    }


def _no_such_version_route(model: str, deployment: ModelDeployment) -> dict[str, Any]:
    return _not_found(f"{model}|no-such-version", {"prefix": "/", "grpc": {}, "headers": [
        {"name": MODEL_HEADER, "string_match": {"exact": model}}, {"name": VERSION_HEADER, "present_match": True}]},
        f"model '{model}' has no version '%REQ({VERSION_HEADER})%'; versions served: {', '.join(deployment.replicas)}")


def _not_served_route(spec: DeploymentSpec) -> dict[str, Any]:
    return _not_found("not-served", {"prefix": "/", "grpc": {}, "headers": [{"name": MODEL_HEADER, "present_match": True}]},
                      f"model '%REQ({MODEL_HEADER})%' is not served here; models served: "
                      f"{', '.join(sorted(spec.models)) or 'none'}")


def _router_routes(spec: DeploymentSpec, rest: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What goes to the router: (routes before the model routes, routes after them). Envoy's
    `grpc` match is the content type: application/grpc, with or without a +suffix."""
    longest = max((d.timeouts.request_s for d in spec.models.values()), default=30.0)
    calls = {"timeout": duration(longest + 1.0),
             "retry_policy": {"retry_on": "connect-failure,refused-stream", "num_retries": 2}}
    first = [
        # Streams live as long as the client keeps them; no overall deadline.
        {"name": "streams", "match": {"prefix": "/inference.GRPCInferenceService/ModelStreamInfer"},
         "route": {"cluster": ROUTER_CLUSTER, "timeout": "0s"}},
        # A deploy waits for its version to load (MESHSERVE_DEPLOY_WAIT_S) and for the gate to load it
        # again: the caller's deadline (--timeout) bounds it, not the inference timeout.
        {"name": "deploy", "match": {"path": "/meshserve.v1.Control/Deploy"},
         "route": {"cluster": ROUTER_CLUSTER, "timeout": "0s"}},
    ]
    if rest:  # the operator's console (meshserve/console/), served by the router's REST listener
        first.append({"name": "console", "match": {"prefix": "/console"},
                      "route": {"cluster": ROUTER_REST_CLUSTER, "timeout": "60s"}})
    last = [{"name": "router", "match": {"prefix": "/", **({"grpc": {}} if rest else {})},
             "route": {"cluster": ROUTER_CLUSTER, **calls}}]
    if rest:
        last.append({"name": "router-rest", "match": {"prefix": "/"}, "route": {"cluster": ROUTER_REST_CLUSTER, **calls}})
    return first, last


def render_routes(spec: DeploymentSpec, rollouts: dict[str, Rollout], version_info: str = "1",
                  rest: bool = False, direct_rest: bool = False,
                  tapped: set[tuple[str, str]] = frozenset(), mesh_secret: str = "") -> dict[str, Any]:
    """The watched route file of both listeners, from the live rollouts. REST: whether the router
    serves the REST binding (its cluster exists); DIRECT_REST: whether the replicas serve it too
    (their REST clusters exist), so REST inferences skip the router as gRPC ones do; MESH_SECRET:
    whether every request sent on carries the mesh secret (EnvoyLayout.mesh_secret)."""
    first, last = _router_routes(spec, rest)
    grpc = grpc_binding(tapped)
    routes: list[dict[str, Any]] = list(first)
    for model, deployment in sorted(spec.models.items()):
        if deployment.cold_versions:
            routes.append(_activator_route(model, deployment))
    for model, deployment in sorted(spec.models.items()):
        rollout = rollouts.get(model) or deployment.initial_rollout()
        routes.extend(_model_routes(model, deployment, rollout, grpc))
        routes.append(_no_such_version_route(model, deployment))
        if direct_rest and rest and not deployment.cold_versions:  # a cold model's REST waits in the router
            routes.extend(_model_routes(model, deployment, rollout, REST))
    routes.append(_not_served_route(spec))
    routes.extend(last)
    if tapped:  # the side tap is on in the chain: every route not to a tapped variant turns it off
        for route in routes:
            route.setdefault("typed_per_filter_config", tap_config())
    host = secure_routes({"name": "models", "domains": ["*"], "routes": routes}, spec, mesh_secret)
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
            "virtual_hosts": [host],
        }],
    }
