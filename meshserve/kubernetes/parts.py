"""The mesh's parts as Kubernetes objects: router, Envoy, one Deployment per variant, network policies."""

from __future__ import annotations

import hashlib
from typing import Any

from meshserve.core.settings import variable_for
from meshserve.envoy.render import RenderedConfig
from meshserve.kubernetes import records, resources
from meshserve.kubernetes.envoy_config import (
    BOOTSTRAP_DIR, BOOTSTRAP_KEY, CLUSTERS_KEY, CONFIG_ROOT, ROUTES_KEY, restart_digest)
from meshserve.kubernetes.models_table import TABLE_DIR, TABLE_KEY
from meshserve.kubernetes.naming import (
    ADAPTER, ENVOY, ENVOY_CONFIG, ENVOY_NAME, FRONT_PORT, FRONT_SERVICE, GRPC_PORT, MESH_PORT, MESH_SERVICE,
    MODELS_TABLE, REST_PORT, ROUTER, ROUTER_NAME, component_selector, dns_label, labels, variant_name)
from meshserve.kubernetes.options import IMAGE_ENVOY, ClusterOptions
from meshserve.kubernetes.packages import PackageRef
from meshserve.kubernetes.workloads import (
    CONTAINER_SECURITY, config_map, cpu_autoscaler, deployment, disruption_budget, drain_delay, grpc_probes, service)
from meshserve.spec.deployment_spec import DeploymentSpec, Replicas

def _server_pod(container: dict[str, Any], spec: DeploymentSpec, options: ClusterOptions,
                volumes: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """A pod with one meshserve server and, when recording, the recorder sidecar on its spool."""
    container = {**container, "env": container.get("env", []) + records.server_env(spec.records, options),
                 "volumeMounts": container.get("volumeMounts", []) + records.spool_mounts(spec.records)}
    pod: dict[str, Any] = {"containers": [container],
                           "volumes": list(volumes) + records.spool_volumes(spec.records)}
    sidecar = records.recorder_sidecar(spec.records, options, CONTAINER_SECURITY)
    if sidecar:
        pod["initContainers"] = sidecar
        # The recorder tells a finished spool file from one still being written by its writer's
        # pid (the number in the file name): it must see the server's processes.
        pod["shareProcessNamespace"] = True
    if not pod["volumes"]:
        del pod["volumes"]
    return pod


def _server_container(name: str, args: list[str], options: ClusterOptions, resources_: dict[str, Any],
                      startup_s: int, mounts: list[dict[str, Any]] = ()) -> dict[str, Any]:
    container = {
        "name": name, "image": options.image, "args": args,
        "ports": [{"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"}],
        "env": [{"name": variable_for("shutdown_grace_s"), "value": str(options.grace_s)}]
               + [{"name": key, "value": value} for key, value in options.extra_env],
        "resources": resources_, "securityContext": CONTAINER_SECURITY,
        "lifecycle": drain_delay(), **grpc_probes(GRPC_PORT, startup_s),
    }
    if mounts:
        container["volumeMounts"] = list(mounts)
    return container


def variant_objects(model: str, version: str, replicas: Replicas, package: PackageRef, spec: DeploymentSpec,
                    options: ClusterOptions) -> list[dict[str, Any]]:
    """Deployment (replicas from the spec), headless Service and disruption budget of one variant;
    with `replicas: {min, max}`, an autoscaler that owns the count instead."""
    name = variant_name(model, version)
    container = _server_container(
        "adapter", ["python", "-m", "meshserve.adapters.server", str(package.directory),
                    "--listen", f"0.0.0.0:{GRPC_PORT}"],
        options, resources.adapter_resources(package.runtime), resources.adapter_startup_s(package.runtime))
    pod = _server_pod(container, spec, options)
    if resources.needs_gpu(package.runtime):
        pod["tolerations"] = resources.gpu_tolerations()
    identity = {"meshserve.io/model": model, "meshserve.io/version": version, "meshserve.io/runtime": package.runtime}
    objects = [
        deployment(name, ADAPTER, None if replicas.scales else replicas.min, pod, annotations=identity,
                   pod_annotations=identity, grace_s=options.grace_s),
        service(name, ADAPTER, [("grpc", GRPC_PORT, "grpc")], headless=True),
        disruption_budget(name, ADAPTER),
    ]
    if replicas.scales:
        # In-flight counts per pod would need a custom-metrics adapter in the cluster; CPU is what
        # every cluster measures, and a busy adapter is a busy CPU.
        objects.append(cpu_autoscaler(name, ADAPTER, replicas.min, replicas.max, options.adapter_cpu_target))
    return objects


def router_objects(spec: DeploymentSpec, table_json: str, options: ClusterOptions) -> list[dict[str, Any]]:
    """The router: the models table as a ConfigMap, a Deployment its autoscaler sizes, a headless Service."""
    container = _server_container(
        "router", ["python", "-m", "meshserve.router.server", "--table", f"{TABLE_DIR}/{TABLE_KEY}",
                   "--listen", f"0.0.0.0:{GRPC_PORT}", "--rest-listen", f"0.0.0.0:{REST_PORT}"],
        options, resources.ROUTER, 60, mounts=[{"name": "models-table", "mountPath": TABLE_DIR, "readOnly": True}])
    container["ports"].append({"name": "http", "containerPort": REST_PORT, "protocol": "TCP"})
    pod = _server_pod(container, spec, options,
                      volumes=[{"name": "models-table", "configMap": {"name": MODELS_TABLE}}])
    # The router reads its table once at start: a new table rolls the router pods.
    digest = {"meshserve.io/models-table-digest": hashlib.sha256(table_json.encode()).hexdigest()[:16]}
    return [
        config_map(MODELS_TABLE, ROUTER, {TABLE_KEY: table_json}),
        deployment(ROUTER_NAME, ROUTER, None, pod, pod_annotations=digest, grace_s=options.grace_s),
        service(ROUTER_NAME, ROUTER, [("grpc", GRPC_PORT, "grpc"), ("http", REST_PORT, "http", "http")], headless=True),
        cpu_autoscaler(ROUTER_NAME, ROUTER, options.router_min, options.router_max, options.router_cpu_target),
        disruption_budget(ROUTER_NAME, ROUTER),
    ]


def _config_volume(name: str, key: str) -> dict[str, Any]:
    # One volume per file: each gets its own `..data` link in its own folder, which the kubelet
    # swaps atomically and Envoy's watched_directory sees as a move. (subPath mounts never update.)
    return {"name": name, "configMap": {"name": ENVOY_CONFIG, "items": [{"key": key, "path": key}]}}


def envoy_objects(config: RenderedConfig, data: dict[str, str], options: ClusterOptions,
                  tls: bool = False) -> list[dict[str, Any]]:
    """Envoy: its rendered files as a ConfigMap, a Deployment, the public front Service, the mesh Service."""
    scheme = "HTTPS" if tls else "HTTP"
    container = {
        "name": "envoy", "image": options.image,
        "command": [str(IMAGE_ENVOY)],
        "args": ["-c", str(BOOTSTRAP_DIR / BOOTSTRAP_KEY), "--concurrency", "2",
                 # A typo in a watched file is refused, not silently ignored.
                 "--reject-unknown-dynamic-fields", "-l", "warning",
                 # Stop accepting within the grace, finish what is in flight.
                 "--drain-time-s", str(int(options.grace_s)), "--drain-strategy", "immediate"],
        "ports": [{"name": "front", "containerPort": FRONT_PORT, "protocol": "TCP"},
                  {"name": "mesh", "containerPort": MESH_PORT, "protocol": "TCP"}],
        "volumeMounts": [
            {"name": "envoy-bootstrap", "mountPath": str(BOOTSTRAP_DIR), "readOnly": True},
            {"name": "envoy-clusters", "mountPath": str(CONFIG_ROOT / "clusters"), "readOnly": True},
            {"name": "envoy-routes", "mountPath": str(CONFIG_ROOT / "routes"), "readOnly": True},
        ],
        "resources": resources.ENVOY, "securityContext": CONTAINER_SECURITY, "lifecycle": drain_delay(),
        # Ready when the front answers health through to a router (the REST binding's liveness,
        # which probes reach without credentials; HTTPS when the front has TLS); alive while the
        # port accepts. Liveness must not depend on the router, or a router outage would restart
        # every Envoy.
        "readinessProbe": {"httpGet": {"path": "/v2/health/live", "port": FRONT_PORT, "scheme": scheme},
                           "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {"tcpSocket": {"port": FRONT_PORT}, "periodSeconds": 10, "failureThreshold": 3},
    }
    pod = {"containers": [container], "volumes": [
        _config_volume("envoy-bootstrap", BOOTSTRAP_KEY),
        _config_volume("envoy-clusters", CLUSTERS_KEY),
        _config_volume("envoy-routes", ROUTES_KEY),
    ]}
    return [
        config_map(ENVOY_CONFIG, ENVOY, data),
        deployment(ENVOY_NAME, ENVOY, options.envoy_replicas, pod, grace_s=options.grace_s,
                   pod_annotations={"meshserve.io/envoy-restart-digest": restart_digest(config)}),
        # The only public Service; the mesh listener's stays inside the cluster.
        service(FRONT_SERVICE, ENVOY, [("grpc", FRONT_PORT, "front")], public=True, pods=ENVOY_NAME),
        service(MESH_SERVICE, ENVOY, [("grpc", MESH_PORT, "mesh")], pods=ENVOY_NAME),
        disruption_budget(ENVOY_NAME, ENVOY),
    ]


def network_policies() -> list[dict[str, Any]]:
    """Who may connect to whom: clients to Envoy's front only; the mesh listener from routers;
    routers and adapters from Envoy. Egress stays open (recorders reach PostgreSQL)."""
    def policy(name: str, component: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": name, "labels": labels(component, name)},
                "spec": {"podSelector": {"matchLabels": component_selector(component)},
                         "policyTypes": ["Ingress"], "ingress": rules}}

    def from_component(component: str, port: int) -> dict[str, Any]:
        return {"from": [{"podSelector": {"matchLabels": component_selector(component)}}],
                "ports": [{"protocol": "TCP", "port": port}]}

    return [
        policy(f"{ENVOY_NAME}-ingress", ENVOY, [{"ports": [{"protocol": "TCP", "port": FRONT_PORT}]},
                                                from_component(ROUTER, MESH_PORT)]),
        policy(f"{ROUTER_NAME}-ingress", ROUTER, [from_component(ENVOY, GRPC_PORT), from_component(ENVOY, REST_PORT)]),
        policy(f"{dns_label('adapters')}-ingress", ADAPTER, [from_component(ENVOY, GRPC_PORT)]),
    ]
