"""CPU, memory and accelerators each kind of pod asks for.

Requests are what the scheduler reserves and what the router's autoscaler measures against;
memory limits stop one leaking model from starving its node. CPU is not limited: a limit
throttles a pod even on an idle node, which shows up as latency spikes. An adapter asks for
what its runtime says (`resources` of its options class: Triton's asks for one NVIDIA GPU, the
device plugin's `nvidia.com/gpu`); a pod with a GPU tolerates the taint GPU node pools usually
carry, so it lands on GPU nodes and nothing else does.
"""

from __future__ import annotations

from typing import Any

from meshserve.core.runtimes import options_class

GPU = "nvidia.com/gpu"

ROUTER = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
ENVOY = {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
RECORDER = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


def adapter_resources(runtime: str) -> dict[str, Any]:
    needs = options_class(runtime).resources
    resources: dict[str, Any] = {"requests": {"cpu": needs.cpu, "memory": needs.memory},
                                 "limits": {"memory": needs.memory_limit}}
    if needs.gpus:
        # Extended resources are requested through limits (requests default to the same).
        resources["limits"][GPU] = needs.gpus
    return resources


def adapter_startup_s(runtime: str) -> int:
    """Seconds an adapter may take to load before liveness counts: a JVM, R or Triton loading a model."""
    return options_class(runtime).resources.startup_s


def needs_gpu(runtime: str) -> bool:
    return options_class(runtime).resources.gpus > 0


def gpu_tolerations() -> list[dict[str, Any]]:
    return [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
