"""CPU, memory and accelerators each kind of pod asks for.

Requests are what the scheduler reserves and what the router's autoscaler measures against;
memory limits stop one leaking model from starving its node. CPU is not limited: a limit
throttles a pod even on an idle node, which shows up as latency spikes. Triton variants ask
for one NVIDIA GPU (the device plugin's `nvidia.com/gpu`) and tolerate the taint GPU node
pools usually carry, so they land on GPU nodes and nothing else does.
"""

from __future__ import annotations

from typing import Any

GPU = "nvidia.com/gpu"

_BY_RUNTIME: dict[str, tuple[str, str, str]] = {
    # runtime: (cpu request, memory request, memory limit)
    "python": ("500m", "512Mi", "2Gi"),
    "r": ("500m", "1Gi", "2Gi"),  # one R per process, plus its packages
    "java": ("500m", "1Gi", "2Gi"),  # the JVM's heap and metaspace
    "triton": ("1", "4Gi", "8Gi"),  # the adapter and the tritonserver it supervises
}
_DEFAULT = _BY_RUNTIME["python"]

ROUTER = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
ENVOY = {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
RECORDER = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


def adapter_resources(runtime: str) -> dict[str, Any]:
    cpu, memory, memory_limit = _BY_RUNTIME.get(runtime, _DEFAULT)
    resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}
    if needs_gpu(runtime):
        # Extended resources are requested through limits (requests default to the same).
        resources["limits"][GPU] = 1
    return resources


def needs_gpu(runtime: str) -> bool:
    return runtime == "triton"


def gpu_tolerations() -> list[dict[str, Any]]:
    return [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
