"""Envoy's configuration for a cluster: the renderer `meshserve up` uses, pointed at Services.

`meshserve.envoy.render` writes one machine's files, whose upstreams are 127.0.0.1 ports
(STATIC clusters). Here the same functions render the same listeners, routes and clusters,
and two things change afterwards:

* upstreams are Services: each variant's and the router's cluster becomes STRICT_DNS on the
  headless Service's name, so every ready pod is one endpoint, health-checked and balanced by
  Envoy per request;
* paths are where the ConfigMap is mounted in the Envoy pod (one volume per watched file,
  so the kubelet's atomic update of a ConfigMap volume, a rename of its `..data` link inside
  the watched folder, is the move Envoy's `watched_directory` reloads on).

Only the front listener binds all interfaces for clients; the mesh listener binds the pod's
interfaces too (the router is another pod) and a NetworkPolicy lets only router pods reach it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from meshserve.envoy.render import EnvoyLayout, UpstreamAddresses, to_yaml
from meshserve.envoy.render import RenderedConfig, render
from meshserve.kubernetes.naming import (
    ENVOY_ADMIN, FRONT_PORT, GRPC_PORT, MESH_PORT, REST_PORT, ROUTER_NAME, service_host, variant_name)
from meshserve.kubernetes.options import ClusterOptions
from meshserve.spec.deployment_spec import DeploymentSpec

# Where the Envoy container finds its files (mounted by envoy_objects in parts.py).
CONFIG_ROOT = Path("/etc/meshserve/envoy")
BOOTSTRAP_DIR = Path("/etc/meshserve/envoy-bootstrap")
BOOTSTRAP_KEY, CLUSTERS_KEY, ROUTES_KEY = "bootstrap.yaml", "clusters.yaml", "routes.yaml"
# How often Envoy asks DNS for a Service's pods; a new or removed pod is seen within this.
DNS_REFRESH = "5s"


def cluster_layout() -> EnvoyLayout:
    return EnvoyLayout(run_dir=CONFIG_ROOT, front=f"0.0.0.0:{FRONT_PORT}", mesh=f"0.0.0.0:{MESH_PORT}",
                       admin=ENVOY_ADMIN, node_id="meshserve-k8s")


def cluster_upstreams(spec: DeploymentSpec, options: ClusterOptions) -> UpstreamAddresses:
    def host(name: str, port: int = GRPC_PORT) -> str:
        return f"{service_host(name, options.namespace, options.cluster_domain)}:{port}"

    return UpstreamAddresses(
        router=[host(ROUTER_NAME)], router_rest=[host(ROUTER_NAME, REST_PORT)],
        variants={(model, version): [host(variant_name(model, version))]
                  for model, deployment in sorted(spec.models.items()) for version in deployment.replicas})


def _resolved_by_dns(cluster: dict[str, Any]) -> dict[str, Any]:
    if cluster.get("type") != "STATIC":
        return cluster  # aggregates (fallback) name other clusters, not addresses
    return {**cluster, "type": "STRICT_DNS", "dns_refresh_rate": DNS_REFRESH, "dns_lookup_family": "V4_PREFERRED"}


def render_for_cluster(spec: DeploymentSpec, options: ClusterOptions) -> RenderedConfig:
    layout = cluster_layout()
    rendered = render(layout, spec, cluster_upstreams(spec, options))
    routes_digest = hashlib.sha256(to_yaml(rendered.routes).encode()).hexdigest()[:12]
    # version_info names the split: Envoy's admin (/config_dump) shows which one a pod serves.
    rendered = render(layout, spec, cluster_upstreams(spec, options), version_info=routes_digest)
    bootstrap = rendered.bootstrap
    static = bootstrap["static_resources"]
    static["clusters"] = [_resolved_by_dns(c) for c in static["clusters"]]
    clusters = {**rendered.clusters, "resources": [_resolved_by_dns(c) for c in rendered.clusters["resources"]]}
    return RenderedConfig(bootstrap=bootstrap, clusters=clusters, routes=rendered.routes)


def config_data(config: RenderedConfig) -> dict[str, str]:
    """The ConfigMap's data: the three files, as Envoy reads them."""
    return {BOOTSTRAP_KEY: to_yaml(config.bootstrap), CLUSTERS_KEY: to_yaml(config.clusters),
            ROUTES_KEY: to_yaml(config.routes)}


def restart_digest(config: RenderedConfig) -> str:
    """Changes when the bootstrap or the clusters change, not when only the routes do.

    Weights and shadows live in the route file, which Envoy reloads in place. New or removed
    variants change the clusters; the route file may only name clusters Envoy already has, and
    the two files' volumes update independently, so such a change rolls the Envoy pods instead
    (this digest is in their template) rather than risk a route file that arrives first.
    """
    return hashlib.sha256((to_yaml(config.bootstrap) + to_yaml(config.clusters)).encode()).hexdigest()[:16]
