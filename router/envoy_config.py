"""Render the Envoy configuration from the deployment spec and the addresses of the processes.

One Envoy carries two listeners:

* the front listener: clients -> router. TLS, auth and access logs belong here; it strips
  `x-meshserve-role` so no client can pretend to be shadow traffic.
* the mesh listener: router -> adapters. It routes on `x-meshserve-model` (set by the
  router): `weighted_clusters` split the traffic among variants, `request_mirror_policies`
  copy a fraction of it to shadows, and `x-meshserve-version: V` pins a request to one
  variant. Each variant is one cluster whose endpoints are its replicas, with gRPC health
  checks and outlier detection.

Three files come out. The bootstrap (listeners, the router cluster, admin) is written once
when Envoy starts. The variant clusters and the mesh routes are files that Envoy watches
(`path_config_source` with `watched_directory`): a rollout writes a new file beside the old
one and renames it into place, which Envoy applies without a restart and without touching
requests already in flight. Writing in place would go unnoticed, hence the rename.
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshserve.router.deployment_spec import DeploymentSpec, ModelDeployment, Rollout
from meshserve.settings import get_settings

MODEL_HEADER = "x-meshserve-model"
VERSION_HEADER = "x-meshserve-version"
ROLE_HEADER = "x-meshserve-role"
ROUTER_CLUSTER = "router"
MESH_ROUTES = "mesh"

BOOTSTRAP_FILE = "bootstrap.yaml"
ROUTES_DIR, ROUTES_FILE = "routes", "routes.yaml"
CLUSTERS_DIR, CLUSTERS_FILE = "clusters", "clusters.yaml"

# Retries and mirrors replay a request from Envoy's buffer: room for the largest message
# the mesh accepts. This is a high-water mark, not memory taken per connection.
def _buffer_limit_bytes() -> int:
    return get_settings().max_message_bytes + 1024 * 1024

# Retry what failed because an adapter is gone before it took the request: a refused
# connection or stream, or the adapter's own UNAVAILABLE (a runtime restarting). Not `reset`:
# a connection that dies mid-request may be the request's own doing (input that crashes R
# or the JVM), and replaying it would take down every replica in turn. Those requests fail
# fast with UNAVAILABLE instead.
RETRY_ON = "connect-failure,refused-stream,reset-before-request,unavailable"

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER_FILTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
_ROUTE_CONFIG = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
_AGGREGATE = "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig"
_PREVIOUS_PRIORITIES = "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig"
_PREVIOUS_HOSTS = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"


def variant_cluster(model: str, version: str) -> str:
    """Envoy cluster of one variant; `|` keeps model and version apart in stats names."""
    return f"variant|{model}|{version}"


def fallback_cluster(model: str, version: str) -> str:
    """Aggregate cluster: the variant first, the model's fallback variant when it has no healthy replica."""
    return f"fallback|{model}|{version}"


@dataclass(frozen=True)
class EnvoyLayout:
    """Where Envoy listens and where its files live (a run directory, not the repository)."""

    run_dir: Path
    front: str  # host:port clients connect to
    mesh: str  # host:port the router sends model calls to
    admin: str  # host:port of Envoy's admin interface (readiness, stats, config dump)
    node_id: str = "meshserve"

    @property
    def bootstrap_path(self) -> Path:
        return self.run_dir / BOOTSTRAP_FILE

    @property
    def routes_path(self) -> Path:
        return self.run_dir / ROUTES_DIR / ROUTES_FILE

    @property
    def clusters_path(self) -> Path:
        return self.run_dir / CLUSTERS_DIR / CLUSTERS_FILE


@dataclass(frozen=True)
class Upstreams:
    """Addresses Envoy forwards to: the router's workers and every variant's replicas."""

    router: list[str]
    variants: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    @classmethod
    def sequential(cls, spec: DeploymentSpec, host: str, first_port: int, router_workers: int = 1) -> "Upstreams":
        """Consecutive ports from FIRST_PORT: the router's workers, then each replica in spec order."""
        port = first_port
        router = []
        for _ in range(router_workers):
            router.append(f"{host}:{port}")
            port += 1
        variants: dict[tuple[str, str], list[str]] = {}
        for model, deployment in sorted(spec.models.items()):
            for version, replicas in deployment.replicas.items():
                variants[(model, version)] = [f"{host}:{port + i}" for i in range(replicas)]
                port += replicas
        return cls(router=router, variants=variants)


def _duration(seconds: float) -> str:
    return f"{seconds:.3f}s"


def _socket_address(address: str) -> dict[str, Any]:
    host, _, port = address.rpartition(":")
    return {"socket_address": {"address": host.strip("[]"), "port_value": int(port)}}


def _load_assignment(name: str, addresses: list[str]) -> dict[str, Any]:
    return {
        "cluster_name": name,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket_address(a)}} for a in addresses]}],
    }


def _http2_upstream() -> dict[str, Any]:
    # gRPC needs HTTP/2 to the upstream; Envoy speaks HTTP/1.1 unless told otherwise.
    return {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": _HTTP_OPTIONS,
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }


def _circuit_breakers() -> dict[str, Any]:
    # Envoy's defaults (1024 requests, 3 retries in flight) reject bursts a single machine can serve.
    return {"thresholds": [{"max_connections": 10_000, "max_pending_requests": 10_000,
                            "max_requests": 10_000, "max_retries": 256}]}


def _variant_cluster(model: str, version: str, deployment: ModelDeployment, addresses: list[str]) -> dict[str, Any]:
    name = variant_cluster(model, version)
    return {
        "@type": _CLUSTER,
        "name": name,
        "type": "STATIC",
        "connect_timeout": _duration(deployment.timeouts.connect_s),
        "lb_policy": "LEAST_REQUEST",
        "load_assignment": _load_assignment(name, addresses),
        "typed_extension_protocol_options": _http2_upstream(),
        "circuit_breakers": _circuit_breakers(),
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
        # Passive checks act between probes. Only failures of the replica itself count:
        # refused connections and UNAVAILABLE; a model raising on bad input (INTERNAL,
        # INVALID_ARGUMENT) says nothing about the replica's health.
        "outlier_detection": {
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": 2,
            "enforcing_consecutive_local_origin_failure": 100,
            "consecutive_gateway_failure": 3,
            "enforcing_consecutive_gateway_failure": 100,
            "enforcing_consecutive_5xx": 0,
            "enforcing_success_rate": 0,
            "enforcing_local_origin_success_rate": 0,
            "interval": "1s",
            "base_ejection_time": "5s",
            "max_ejection_percent": 100,
        },
    }


def _fallback_cluster(model: str, version: str, fallback: str, deployment: ModelDeployment) -> dict[str, Any]:
    return {
        "@type": _CLUSTER,
        "name": fallback_cluster(model, version),
        "connect_timeout": _duration(deployment.timeouts.connect_s),
        "lb_policy": "CLUSTER_PROVIDED",
        # Retries are counted against this cluster: without room for them, the retry that
        # would move to the fallback overflows (Envoy's default allows 3 at a time).
        "circuit_breakers": _circuit_breakers(),
        "cluster_type": {
            "name": "envoy.clusters.aggregate",
            "typed_config": {"@type": _AGGREGATE,
                             "clusters": [variant_cluster(model, version), variant_cluster(model, fallback)]},
        },
    }


def render_clusters(spec: DeploymentSpec, upstreams: Upstreams) -> dict[str, Any]:
    """The watched cluster file: one cluster per deployed variant, plus fallback aggregates."""
    resources = []
    for model, deployment in sorted(spec.models.items()):
        for version in deployment.replicas:
            addresses = upstreams.variants.get((model, version))
            if not addresses:
                raise ValueError(f"no addresses for {model} version {version}")
            resources.append(_variant_cluster(model, version, deployment, addresses))
        if deployment.fallback is not None:
            # Every deployed version, shadows too: a rollout may give a shadow primary traffic.
            for version in deployment.replicas:
                if version != deployment.fallback:
                    resources.append(_fallback_cluster(model, version, deployment.fallback, deployment))
    return {"resources": resources}


def _retry_policy(with_fallback: bool) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "retry_on": RETRY_ON,
        "num_retries": 2,
        "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                                  "typed_config": {"@type": _PREVIOUS_HOSTS}}],
        "host_selection_retry_max_attempts": 3,
    }
    if with_fallback:
        # A retry skips the priority (sub-cluster) that just failed, i.e. moves to the fallback.
        policy["retry_priority"] = {"name": "envoy.retry_priorities.previous_priorities",
                                    "typed_config": {"@type": _PREVIOUS_PRIORITIES, "update_frequency": 1}}
    return policy


def _set_header(name: str, value: str) -> dict[str, Any]:
    return {"header": {"key": name, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}


def roles(rollout: Rollout) -> dict[str, str]:
    """primary for the variant with the largest weight (first listed on a tie), canary for the others."""
    ranked = sorted(rollout.weights.items(), key=lambda item: -item[1])
    primary = ranked[0][0] if ranked else None
    return {version: "primary" if version == primary else "canary" for version in rollout.weights}


def _route_timeouts(deployment: ModelDeployment) -> dict[str, Any]:
    request = _duration(deployment.timeouts.request_s)
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
            "request_headers_to_add": [_set_header(ROLE_HEADER, role_of.get(version, "canary"))],
            "route": {"cluster": variant_cluster(model, version), **_route_timeouts(deployment),
                      "retry_policy": _retry_policy(False)},
        })
    split: dict[str, Any] = {
        "clusters": [
            {"name": target(version), "weight": weight,
             "request_headers_to_add": [_set_header(ROLE_HEADER, role_of[version])]}
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
            "cluster": variant_cluster(model, version),
            # The copy is marked so the adapter records it as shadow; Envoy's own marker,
            # a -shadow suffix on :authority, is invisible to a grpcio server.
            "request_headers_mutations": [{"append": _set_header(ROLE_HEADER, "shadow")}],
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
            _set_header("content-type", "application/grpc"),
            _set_header("grpc-status", "5"),
            _set_header("grpc-message", "model or version not served by this mesh (see x-meshserve-model/x-meshserve-version)"),
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
            "@type": _ROUTE_CONFIG,
            "name": MESH_ROUTES,
            # Refuse a route file naming a cluster Envoy does not know, rather than 503 at runtime.
            "validate_clusters": True,
            # Envoy skips a route file whose content is unchanged, version_info included; the
            # version in metadata makes every rollout observable in the config dump.
            "metadata": {"filter_metadata": {"meshserve": {"routes_version": version_info}}},
            "virtual_hosts": [{"name": "models", "domains": ["*"], "routes": routes}],
        }],
    }


def _path_source(path: Path) -> dict[str, Any]:
    return {"path_config_source": {"path": str(path), "watched_directory": {"path": str(path.parent)}},
            "resource_api_version": "V3"}


def _connection_manager(stat_prefix: str, codec: str, routing: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": _HCM,
            "stat_prefix": stat_prefix,
            "codec_type": codec,
            # The router decides the request id: the client's header, else the request's id field.
            "generate_request_id": False,
            "http2_protocol_options": {"max_concurrent_streams": 1024},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER_FILTER}}],
            **routing,
        },
    }


def _listener(name: str, address: str, manager: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "address": _socket_address(address),
        # Envoy shares ports by default (SO_REUSEPORT): a second mesh on the same address would
        # silently take half of the first one's clients. Refuse a busy port instead.
        "enable_reuse_port": False,
        "per_connection_buffer_limit_bytes": _buffer_limit_bytes(),
        "filter_chains": [{"filters": [manager]}],
    }


def render_bootstrap(layout: EnvoyLayout, spec: DeploymentSpec, upstreams: Upstreams) -> dict[str, Any]:
    longest = max((d.timeouts.request_s for d in spec.models.values()), default=30.0)
    front_routes = {
        "route_config": {
            "name": "front",
            "virtual_hosts": [{
                "name": "router",
                "domains": ["*"],
                "request_headers_to_remove": [ROLE_HEADER],
                "routes": [
                    # Streams live as long as the client keeps them; no overall deadline.
                    {"match": {"prefix": "/inference.GRPCInferenceService/ModelStreamInfer"},
                     "route": {"cluster": ROUTER_CLUSTER, "timeout": "0s"}},
                    {"match": {"prefix": "/"},
                     "route": {"cluster": ROUTER_CLUSTER, "timeout": _duration(longest + 1.0),
                               "retry_policy": {"retry_on": "connect-failure,refused-stream", "num_retries": 2}}},
                ],
            }],
        }
    }
    mesh_routes = {"rds": {"route_config_name": MESH_ROUTES, "config_source": _path_source(layout.routes_path)}}
    return {
        "node": {"id": layout.node_id, "cluster": "meshserve"},
        "admin": {"address": _socket_address(layout.admin)},
        "static_resources": {
            "listeners": [
                # AUTO: clients may speak HTTP/2 with prior knowledge (gRPC) or HTTP/1.1 (health probes).
                _listener("front", layout.front, _connection_manager("front", "AUTO", front_routes)),
                _listener("mesh", layout.mesh, _connection_manager("mesh", "HTTP2", mesh_routes)),
            ],
            "clusters": [{
                "name": ROUTER_CLUSTER,
                "type": "STATIC",
                "connect_timeout": "1s",
                "lb_policy": "LEAST_REQUEST",
                "load_assignment": _load_assignment(ROUTER_CLUSTER, upstreams.router),
                "typed_extension_protocol_options": _http2_upstream(),
                "circuit_breakers": _circuit_breakers(),
            }],
        },
        "dynamic_resources": {"cds_config": _path_source(layout.clusters_path)},
    }


@dataclass
class RenderedConfig:
    """Everything Envoy reads, as plain data; `write` puts it where the bootstrap says."""

    bootstrap: dict[str, Any]
    clusters: dict[str, Any]
    routes: dict[str, Any]

    def documents(self, layout: EnvoyLayout) -> str:
        """The three files as one YAML stream, each headed by the path it is written to."""
        parts = []
        for path, data in ((layout.bootstrap_path, self.bootstrap), (layout.clusters_path, self.clusters),
                           (layout.routes_path, self.routes)):
            parts.append(f"# {path}\n{to_yaml(data)}")
        return "---\n".join(parts)

    def inlined(self) -> dict[str, Any]:
        """One self-contained bootstrap with the watched clusters and routes written in.

        `envoy --mode validate` does not read watched files, so this is what gets validated:
        the same resources, checked by the same binary.
        """
        bootstrap = copy.deepcopy(self.bootstrap)
        static = bootstrap["static_resources"]
        static["clusters"] += [_without_type(c) for c in self.clusters["resources"]]
        for listener in static["listeners"]:
            manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
            if "rds" in manager:
                del manager["rds"]
                manager["route_config"] = _without_type(self.routes["resources"][0])
        bootstrap.pop("dynamic_resources", None)
        return bootstrap

    def write(self, layout: EnvoyLayout) -> None:
        # Clusters before routes: the route file may only name clusters Envoy already has.
        write_watched(layout.clusters_path, self.clusters)
        write_watched(layout.routes_path, self.routes)
        write_watched(layout.bootstrap_path, self.bootstrap)


def _without_type(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in copy.deepcopy(resource).items() if k != "@type"}


def render(layout: EnvoyLayout, spec: DeploymentSpec, upstreams: Upstreams,
           rollouts: dict[str, Rollout] | None = None, version_info: str = "1") -> RenderedConfig:
    return RenderedConfig(
        bootstrap=render_bootstrap(layout, spec, upstreams),
        clusters=render_clusters(spec, upstreams),
        routes=render_routes(spec, rollouts or {}, version_info),
    )


def to_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=120)


def write_watched(path: Path, data: dict[str, Any]) -> None:
    """Replace PATH atomically: write a temporary file in the same folder, then rename it over.

    Envoy reloads a watched file when a file is moved into its folder; the rename also means
    it never reads a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(to_yaml(data))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
