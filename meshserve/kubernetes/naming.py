"""Names, labels and ports every rendered object agrees on.

Kubernetes object names must be DNS labels (lower case, letters, digits and '-', at most 63
characters, starting with a letter), while model names and versions may hold '_', '.' and
capitals. A name that had to change, or is too long, gets a short digest of the original so
two variants can never end up with the same object name.
"""

from __future__ import annotations

import hashlib
import re

PART_OF = "meshserve"
PREFIX = "meshserve"
MAX_NAME = 63

# Inside a pod every server has the pod's network to itself, so the ports are fixed.
GRPC_PORT = 8001  # router and adapters: Open Inference Protocol + health + reflection
FRONT_PORT = 8001  # Envoy's front listener, the one public port
MESH_PORT = 8002  # Envoy's mesh listener, for the router only
REST_PORT = 8000  # the router's HTTP/REST listener; clients reach REST on FRONT_PORT, through Envoy
ENVOY_ADMIN = "127.0.0.1:9901"  # never reachable from outside the Envoy container

ROUTER = "router"
ENVOY = "envoy"
ADAPTER = "adapter"

_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def dns_label(*parts: str) -> str:
    """`meshserve-PART-PART` as a DNS label; a digest suffix when the parts had to be changed."""
    raw = "-".join((PREFIX, *parts))
    clean = _NOT_DNS.sub("-", raw.lower()).strip("-")
    clean = re.sub(r"-{2,}", "-", clean)
    if clean == raw and len(clean) <= MAX_NAME:
        return clean
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:6]
    return f"{clean[:MAX_NAME - 7].rstrip('-')}-{digest}"


def variant_name(model: str, version: str) -> str:
    """Deployment, Service and budget of one variant: meshserve-MODEL-vVERSION."""
    return dns_label(model, f"v{version}")


ROUTER_NAME = dns_label(ROUTER)
ENVOY_NAME = dns_label(ENVOY)
FRONT_SERVICE = PREFIX  # what clients connect to: `meshserve:8001` in the namespace
MESH_SERVICE = dns_label(ENVOY, "mesh")
ENVOY_CONFIG = dns_label(ENVOY, "config")
MODELS_TABLE = dns_label("models")
RECORDS_SECRET = dns_label("records")


def labels(component: str, name: str) -> dict[str, str]:
    """Labels of an object and its pods; `selector` is the subset that picks the pods."""
    return {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/component": component,
            "app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "meshserve-k8s-render"}


def selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/name": name}


def component_selector(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/component": component}


def service_host(name: str, namespace: str, cluster_domain: str) -> str:
    """Fully qualified, so Envoy's resolver needs no search domains."""
    return f"{name}.{namespace}.svc.{cluster_domain}"
