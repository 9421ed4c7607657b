"""Where a mesh's Envoy listens, what it forwards to, and where its files live.

Three files make Envoy's configuration. The bootstrap (listeners, the router cluster, admin)
is written once when Envoy starts. The variant clusters and the mesh routes are files that
Envoy watches (`path_config_source` with `watched_directory`): a rollout writes a new file
beside the old one and renames it into place, which Envoy applies without a restart and
without touching requests already in flight. Writing in place would go unnoticed, hence the
rename (`write_watched`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshserve.spec.deployment_spec import DeploymentSpec

ROUTER_CLUSTER = "router"
ROUTER_REST_CLUSTER = "router_rest"  # the router's REST listener (HTTP/1.1)
MESH_ROUTES = "mesh"

BOOTSTRAP_FILE = "bootstrap.yaml"
ROUTES_DIR, ROUTES_FILE = "routes", "routes.yaml"
CLUSTERS_DIR, CLUSTERS_FILE = "clusters", "clusters.yaml"
# What the Envoy process writes beside its configuration (envoy/process.py).
LOG_FILE, STDERR_FILE, BASE_ID_FILE = "envoy.log", "envoy.stderr", "envoy.base-id"

def variant_cluster(model: str, version: str) -> str:
    """Envoy cluster of one variant; `|` keeps model and version apart in stats names."""
    return f"variant|{model}|{version}"


def mirror_cluster(model: str, version: str) -> str:
    """The same replicas as the variant's cluster, for mirrored copies only, with their own small
    limits: copies can never take the capacity that requests for the variant itself need."""
    return f"mirror|{model}|{version}"


def rest_cluster(model: str, version: str) -> str:
    """The same replicas' REST listeners (HTTP/1.1), for the REST binding's inferences."""
    return f"rest|{model}|{version}"


def tap_cluster(model: str, version: str) -> str:
    """The side taps (ext_proc servers) of a variant whose replicas Envoy sends straight to Triton."""
    return f"tap|{model}|{version}"


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
    # Where the front logs the inferences it answered itself, for the recorder ("": not logged).
    refusal_log: str = ""
    # The secret Envoy adds to every request it sends to the mesh's servers (read from its
    # environment) and asks of the router's calls on the mesh listener ("": the mesh checks none;
    # meshserve/core/mesh_secret.py).
    mesh_secret: str = field(default="", repr=False)

    @property
    def bootstrap_path(self) -> Path:
        return self.run_dir / BOOTSTRAP_FILE

    @property
    def routes_path(self) -> Path:
        return self.run_dir / ROUTES_DIR / ROUTES_FILE

    @property
    def clusters_path(self) -> Path:
        return self.run_dir / CLUSTERS_DIR / CLUSTERS_FILE

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG_FILE


@dataclass(frozen=True)
class UpstreamAddresses:
    """Addresses Envoy forwards to: the router's workers (gRPC, and REST when they serve it) and
    every variant's replicas."""

    router: list[str]
    variants: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    router_rest: list[str] = field(default_factory=list)
    # Working slots of one replica of each variant (envoy/limits.py sizes circuit breakers from them).
    slots: dict[tuple[str, str], int] = field(default_factory=dict)
    # A replica's REST listener, by its gRPC address; empty when replicas serve gRPC only (REST
    # then goes through the router).
    rest_of: dict[str, str] = field(default_factory=dict)
    # A replica whose inferences go straight to another server (its own Triton) rather than to
    # the replica itself, by the replica's gRPC address; and where that replica's side tap listens.
    direct_of: dict[str, str] = field(default_factory=dict)
    tap_of: dict[str, str] = field(default_factory=dict)

    def tapped(self) -> set[tuple[str, str]]:
        """The variants served straight by Triton and recorded through a side tap."""
        return {key for key, addresses in self.variants.items() if any(a in self.tap_of for a in addresses)}

    @classmethod
    def sequential(cls, spec: DeploymentSpec, host: str, first_port: int, router_workers: int = 1,
                   rest: bool = False) -> "UpstreamAddresses":
        """Consecutive ports from FIRST_PORT: the router's workers, then each replica in spec order;
        with REST, the router's REST listener after its workers and each replica's after its gRPC port."""
        ports = iter(range(first_port, first_port + 65536))
        router = [f"{host}:{next(ports)}" for _ in range(router_workers)]
        router_rest = [f"{host}:{next(ports)}"] if rest else []
        variants: dict[tuple[str, str], list[str]] = {}
        rest_of: dict[str, str] = {}
        for model, deployment in sorted(spec.models.items()):
            for version, replicas in deployment.replicas.items():
                variants[(model, version)] = []
                for _ in range(replicas):
                    address = f"{host}:{next(ports)}"
                    variants[(model, version)].append(address)
                    if rest:
                        rest_of[address] = f"{host}:{next(ports)}"
        return cls(router=router, variants=variants, router_rest=router_rest, rest_of=rest_of)


def to_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=120)


def write_watched(path: Path, data: dict[str, Any]) -> None:
    """Replace PATH atomically: write a temporary file in the same folder, then rename it over.

    Envoy reloads a watched file when a file is moved into its folder; the rename also means
    it never reads a half-written file. mkstemp makes it readable by its owner only (0600),
    which the mesh secret and API keys in these files need.
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
