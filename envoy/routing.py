"""The published way to change what a running mesh's Envoy serves, and to read how it serves it.

The router's control plane and the launcher program Envoy only through this module (and render
its first configuration through render.py): a model's split is applied and waited for in one
call (`LiveRouting.apply`), new variants are taken in the same way (`take_in`), and the variant
clusters are rewritten and watched through `VariantClusters`. How that is done (the watched
files, their renames, the admin interface, the names of clusters) stays inside envoy/.

Errors: `ModelNotFound` for a model the mesh does not serve, `ManifestError` (naming the field
and the fix) for a split the deployment cannot carry, in which case nothing changed; and
`EnvoyError` when Envoy did not serve a change in time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from meshserve.envoy.admin import EnvoyAdmin, EnvoyError
from meshserve.envoy.clusters import render_clusters
from meshserve.envoy.layout import EnvoyLayout, UpstreamAddresses, mirror_cluster, variant_cluster, write_watched
from meshserve.envoy.rollouts import LiveRollouts
from meshserve.spec.deployment_spec import DeploymentSpec, Rollout
from meshserve.spec.table_control import EnvoyControl

# variant_cluster: the name Envoy reports a variant's statistics under.
__all__ = ["EnvoyError", "LiveRouting", "VariantClusters", "VariantLoad", "variant_cluster", "variant_hosts"]

Key = tuple[str, str]  # (model, version)


class LiveRouting:
    """Every model's live split in a running mesh's Envoy; each change returns once Envoy serves it."""

    def __init__(self, rollouts: LiveRollouts, admin: EnvoyAdmin):
        self._rollouts = rollouts
        self._admin = admin

    @classmethod
    def for_mesh(cls, envoy: EnvoyControl, deployment: Path, rollout_state: Path | None,
                 mesh_secret: str = "") -> "LiveRouting":
        """The routing of the Envoy `meshserve up` runs, as its models table describes it: DEPLOYMENT
        is the resolved spec it runs, ROLLOUT_STATE where each applied split is kept across restarts,
        MESH_SECRET what the routes send on to the mesh's servers."""
        layout = EnvoyLayout(Path(envoy.run_dir), front=envoy.front, mesh=envoy.mesh, admin=envoy.admin,
                             mesh_secret=mesh_secret)
        spec = DeploymentSpec.model_validate_json(Path(deployment).read_text())
        rollouts = LiveRollouts(spec, layout, state_path=rollout_state, rest=envoy.rest,
                                direct_rest=envoy.direct_rest, tapped=set(envoy.tapped))
        return cls(rollouts, EnvoyAdmin(envoy.admin))

    @property
    def spec(self) -> DeploymentSpec:
        """The deployment the routes are rendered from (it grows as packages are loaded)."""
        return self._rollouts.spec

    def current(self, model: str) -> Rollout:
        """MODEL's split now; raises ModelNotFound for a model the mesh does not serve."""
        return self._rollouts.current(model)

    def apply(self, model: str, weights: Mapping[str, int] | None = None,
              shadows: Mapping[str, float] | None = None) -> Rollout:
        """Set MODEL's weights and/or shadows (None keeps the current ones); returns the split
        applied (every variant listed, weight 0 for those left out) once Envoy serves it. Blocks."""
        applied = self._rollouts.apply(model, weights, shadows)
        self._admin.wait_for_routes(self._rollouts.version_info)
        return applied

    def take_in(self, spec: DeploymentSpec) -> None:
        """Serve the models and variants SPEC adds (a new variant of a served model at weight 0),
        once their clusters are in Envoy's cluster file; returns once Envoy serves the routes. Blocks."""
        self._admin.wait_for_routes(self._rollouts.take_in(spec))


@dataclass(frozen=True)
class VariantLoad:
    """What Envoy counts at one variant's replicas, its own requests and the copies mirrored to it."""

    active: int  # requests in flight now
    none_healthy: int  # requests Envoy found no healthy replica for, since it started


class VariantClusters:
    """The variant clusters of a running mesh's Envoy (its watched cluster file, rendered from SPEC
    and UPSTREAMS as they are when `write` is called) and what Envoy reports of them."""

    def __init__(self, spec: DeploymentSpec, layout: EnvoyLayout, upstreams: UpstreamAddresses):
        self.spec, self.layout, self.upstreams = spec, layout, upstreams
        self._admin = EnvoyAdmin(layout.admin)

    @property
    def log_path(self) -> Path:
        """Envoy's log, where a change it did not apply is explained."""
        return self.layout.log_path

    def write(self) -> None:
        """Rename a cluster file naming every variant's replicas now into Envoy's watched folder."""
        write_watched(self.layout.clusters_path, render_clusters(self.spec, self.upstreams, self.layout.mesh_secret))

    def hosts(self, key: Key) -> dict[str, str]:
        """The replicas Envoy serves variant KEY with now: address -> health ("healthy" when none is flagged)."""
        return self._admin.hosts(variant_cluster(*key))

    def loads(self, keys: Iterable[Key]) -> dict[Key, VariantLoad]:
        """Each variant's load, from one read of Envoy's stats."""
        stats = self._admin.stats("cluster.")
        found = {}
        for key in keys:
            names = [f"cluster.{variant_cluster(*key)}", f"cluster.{mirror_cluster(*key)}"]
            found[key] = VariantLoad(active=sum(stats.get(f"{name}.upstream_rq_active", 0) for name in names),
                                     none_healthy=sum(stats.get(f"{name}.upstream_cx_none_healthy", 0)
                                                      for name in names))
        return found


def variant_hosts(envoy: EnvoyControl, key: Key) -> dict[str, str]:
    """The replicas the Envoy of a models table's control section serves variant KEY with now:
    address -> health ("healthy" when none is flagged)."""
    return EnvoyAdmin(envoy.admin).hosts(variant_cluster(*key))
