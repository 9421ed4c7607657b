"""The Kubernetes objects every part is made of: Deployment, Service, disruption budget, autoscaler.

Each builder takes plain values and returns a plain dict, so a test can read exactly what
`kubectl apply` will get.
"""

from __future__ import annotations

import math
from typing import Any

from meshserve.kubernetes.naming import labels, selector

# The image runs as root (scripts/setup.sh installs into /opt), so what can be taken away is:
# no privilege escalation, no capabilities, the runtime's default seccomp filter.
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                      "seccompProfile": {"type": "RuntimeDefault"}}


def grpc_probes(port: int, startup_s: int) -> dict[str, Any]:
    """Probes on the standard grpc.health.v1 service every meshserve server answers.

    The startup probe gives a slow load (a JVM, R, Triton loading its model) its runtime's
    `resources.startup_s` before liveness counts; readiness keeps a pod out of its Service until its model answers.
    """
    return {
        "startupProbe": {"grpc": {"port": port}, "periodSeconds": 2, "failureThreshold": max(1, startup_s // 2)},
        "readinessProbe": {"grpc": {"port": port}, "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {"grpc": {"port": port}, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5},
    }


def drain_delay(seconds: int = 5) -> dict[str, Any]:
    # A terminating pod leaves its Service's DNS at once, but Envoy re-resolves only every few
    # seconds: keep serving that long before the server starts refusing new calls.
    return {"preStop": {"exec": {"command": ["sleep", str(seconds)]}}}


def deployment(name: str, component: str, replicas: int | None, pod: dict[str, Any],
               annotations: dict[str, str] | None = None, pod_annotations: dict[str, str] | None = None,
               grace_s: float = 5.0) -> dict[str, Any]:
    template_meta: dict[str, Any] = {"labels": labels(component, name)}
    if pod_annotations:
        template_meta["annotations"] = pod_annotations
    meta: dict[str, Any] = {"name": name, "labels": labels(component, name)}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {
            # None when an autoscaler owns the count: `kubectl apply` would otherwise reset it.
            **({} if replicas is None else {"replicas": replicas}),
            "selector": {"matchLabels": selector(name)},
            # One new pod up and ready before an old one goes: capacity never drops in a rollout.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": template_meta,
                         "spec": {"terminationGracePeriodSeconds": math.ceil(grace_s) + 25, **pod}},
        },
    }


def service(name: str, component: str, ports: list[tuple], headless: bool = False,
            public: bool = False, pods: str | None = None) -> dict[str, Any]:
    """PORTS: (name, port, target port name[, appProtocol, default h2c]); PODS: the workload it
    selects (default NAME).

    Headless: DNS answers every ready pod's address, so Envoy (STRICT_DNS) balances each request
    over the pods instead of pinning a long-lived HTTP/2 connection to one behind a virtual IP.
    """
    spec: dict[str, Any] = {
        "selector": selector(pods or name),
        "ports": [{"name": port_name, "port": port, "targetPort": target, "protocol": "TCP",
                   "appProtocol": protocol[0] if protocol else "kubernetes.io/h2c"}
                  for port_name, port, target, *protocol in ports],
    }
    if headless:
        spec["clusterIP"] = "None"
    if public:
        spec["type"] = "LoadBalancer"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels(component, name)},
            "spec": spec}


def disruption_budget(name: str, component: str) -> dict[str, Any]:
    # One pod at a time may be evicted (a node drain moves them one by one). Not minAvailable:
    # on a one-replica variant that would block every drain forever.
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "labels": labels(component, name)},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(name)}}}


def cpu_autoscaler(name: str, component: str, minimum: int, maximum: int, cpu_percent: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": labels(component, name)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": minimum, "maxReplicas": maximum,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_percent}}}],
            # Up fast for a spike, down slowly so a dip between two bursts does not drop capacity.
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0,
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                "scaleDown": {"stabilizationWindowSeconds": 300,
                              "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
            },
        },
    }


def config_map(name: str, component: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels(component, name)},
            "data": data}
