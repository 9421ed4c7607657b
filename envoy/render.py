"""Render the Envoy configuration from the deployment spec and the addresses of the processes.

One Envoy carries two listeners, routed by one watched table (routes.py):

* the front listener: clients -> adapters for ModelInfer, the router for everything else.
  TLS, auth and access logs belong here. Its body-routing filter reads the model and version
  from a ModelInfer message into `x-meshserve-model` / `x-meshserve-version` (removing any
  mesh header a client sent, so no client can pretend to be shadow traffic); then
  `weighted_clusters` split the traffic among variants, `request_mirror_policies` copy a
  fraction of it to shadows, and a named version pins a request to one variant. Each variant
  is one cluster whose endpoints are its replicas, with gRPC health checks and outlier
  detection.
* the mesh listener: router -> adapters, for the inferences the router forwards (streams,
  REST, a model starting from zero): the same model routes, on the headers the router sets.

Three files come out. The bootstrap (listeners, the router cluster, admin) is written once
when Envoy starts. The variant clusters and the mesh routes are files that Envoy watches
(`path_config_source` with `watched_directory`): a rollout writes a new file beside the old
one and renames it into place, which Envoy applies without a restart and without touching
requests already in flight. Writing in place would go unnoticed, hence the rename.

This module, routing.py (live changes) and process.py (running Envoy) are envoy/'s published
interface: other parts import nothing else of it (tests/test_import_rules.py checks).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from meshserve.envoy.bootstrap import render_bootstrap
from meshserve.envoy.clusters import render_clusters
from meshserve.envoy.layout import EnvoyLayout, UpstreamAddresses, to_yaml, write_watched
from meshserve.envoy.routes import render_routes
from meshserve.spec.deployment_spec import DeploymentSpec, Rollout

# The render entry point, with the types it takes: what a launcher needs to write Envoy's first
# configuration (live changes after that go through routing.py).
__all__ = ["EnvoyLayout", "RenderedConfig", "UpstreamAddresses", "render", "to_yaml"]

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


def render(layout: EnvoyLayout, spec: DeploymentSpec, upstreams: UpstreamAddresses,
           rollouts: dict[str, Rollout] | None = None, version_info: str = "1") -> RenderedConfig:
    return RenderedConfig(
        bootstrap=render_bootstrap(layout, spec, upstreams),
        clusters=render_clusters(spec, upstreams, layout.mesh_secret),
        routes=render_routes(spec, rollouts or {}, version_info, rest=bool(upstreams.router_rest),
                             direct_rest=bool(upstreams.rest_of), tapped=upstreams.tapped(),
                             mesh_secret=layout.mesh_secret),
    )
