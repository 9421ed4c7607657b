"""What a cluster adds to the deployment spec: image, namespace, where packages live in the image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

# The image built by compose/Dockerfile: the repository and its venv under /opt/meshserve.
IMAGE_HOME = PurePosixPath("/opt/meshserve")
IMAGE_MODELS = IMAGE_HOME / "examples"
IMAGE_ENVOY = IMAGE_HOME / ".venv/lib/python3.11/site-packages/envoy/_bin/envoy"


@dataclass(frozen=True)
class ClusterOptions:
    image: str = "meshserve:latest"
    namespace: str = "meshserve"
    cluster_domain: str = "cluster.local"
    models_root: PurePosixPath = IMAGE_MODELS  # the rendered folder of packages, as seen inside the image
    router_min: int = 2
    router_max: int = 10
    router_cpu_target: int = 70  # percent of the CPU request the autoscaler keeps each router pod at
    adapter_cpu_target: int = 70  # percent of its CPU request the autoscaler keeps each adapter pod of a
    # variant with replicas {min, max} at
    envoy_replicas: int = 2
    records_secret: str | None = None  # an existing Secret with `store-url`; None: rendered from the spec
    grace_s: float = 5.0  # in-flight requests may finish this long after SIGTERM (MESHSERVE_SHUTDOWN_GRACE_S)
    # NAME=VALUE pairs for every router and adapter container: MESHSERVE_* settings, OTEL_* exporters.
    extra_env: tuple[tuple[str, str], ...] = ()
