"""The Runtime interface every model world implements (python, r, java, triton).

A runtime is small: load a package, turn named numpy arrays into named numpy arrays,
close. Everything else (gRPC, codecs, validation, batching, health, observers) is the
adapter server's job, so a new world only has to write these methods and its options class,
and add one row to the table of runtimes (meshserve/core/runtimes.py, or an entry point).

What the rest of meshserve needs to know about a world is asked of its options class, never
decided by its name: how many requests a replica works on at once (Envoy's limits), what a
replica asks a cluster for (Kubernetes), whether its server describes the model itself (the
router's ModelConfig), what `meshserve package` records of its environment.

Errors: raise `meshserve.core.errors.InvalidInput` for input the model cannot take (it becomes
INVALID_ARGUMENT naming the input), `ModelUnavailable` when the runtime is gone; any other
exception becomes INTERNAL with its type and message.
"""

from __future__ import annotations

import abc
import contextvars
import platform
import subprocess
import sys
from typing import Any, ClassVar

from pydantic import Field

from meshserve.core.datatypes import Tensors
from meshserve.core.model_package import ModelPackage
from meshserve.core.strict_model import StrictModel

# When the current request must be answered by (time.monotonic() seconds), from the caller's gRPC
# deadline; None when the caller set none. Runtimes that call another server pass it on.
request_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("request_deadline", default=None)


class ReplicaResources(StrictModel):
    """What one adapter replica of a runtime asks a cluster for (Kubernetes requests and limits)."""

    cpu: str = Field(default="500m", description="CPU the scheduler reserves (no limit: a limit throttles).")
    memory: str = Field(default="512Mi", description="Memory the scheduler reserves.")
    memory_limit: str = Field(default="2Gi", description="Memory beyond which the replica is stopped.")
    gpus: int = Field(default=0, ge=0, description="NVIDIA GPUs; a replica with any lands on GPU nodes only.")
    startup_s: int = Field(default=120, gt=0, description="Seconds it may take to load before liveness counts.")


class RuntimeOptions(StrictModel):
    """A runtime's own section of model.yaml (`python:`, `r:`, ...), checked before anything starts,
    and the runtime's facts that other parts of meshserve ask for."""

    # What one replica asks a cluster for; a runtime whose needs differ overrides it.
    resources: ClassVar[ReplicaResources] = ReplicaResources()
    # The model's own server keeps its Triton ModelConfig, which the adapter fetches (the Triton
    # runtime); otherwise the router describes the model from model.yaml (core/mesh_protocol.py).
    config_from_server: ClassVar[bool] = False

    def served_straight(self) -> bool:
        """Behind Envoy, inferences go straight to the model's own server, with the adapter beside the
        path (a side tap) instead of on it; the launcher then gives that server fixed ports."""
        return False

    def working_slots(self) -> int:
        """Requests one replica works on at once, without micro-batching (core/replica_slots.py)."""
        return 1

    def capture_environment(self, package: ModelPackage) -> dict[str, Any]:
        """What `meshserve package` records under `environment:`, keyed by world: by default the
        Python version and `pip freeze`."""
        return python_environment()

    @classmethod
    def describe_environment(cls, recorded: dict[str, Any]) -> str | None:
        """One line for `meshserve package` on what was recorded under this runtime's name; None
        when the runtime has nothing to say beyond that it was recorded."""
        return None

    def check_package(self, package: ModelPackage) -> None:
        """Check the package's files against these options; raise ManifestError naming the fix.

        Cheap: every process that reads the package (router, launcher) runs it."""

    def check_model(self, package: ModelPackage) -> None:
        """Load the model file and check the signature against it; what `meshserve check` adds to
        check_package. A runtime makes the same checks when it loads the model."""


class Runtime(abc.ABC):
    """Serve one model package."""

    package: ModelPackage

    @abc.abstractmethod
    async def load(self, package: ModelPackage) -> None:
        """Load the model; raise with a message a user can act on if it cannot be."""

    @abc.abstractmethod
    async def predict(self, inputs: Tensors) -> Tensors:
        """Score named input arrays (batch along axis 0) and return every declared output."""

    async def ready(self) -> bool:
        """Whether the model can answer now (a remote runtime asks its server)."""
        return True

    async def close(self) -> None:
        """Release the model and whatever the runtime started."""

    async def model_config(self):
        """The model's own Triton ModelConfig where its server keeps one (options whose
        `config_from_server` is true); None lets the adapter describe the model from model.yaml."""
        return None


def python_environment() -> dict[str, Any]:
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                            capture_output=True, text=True, check=False).stdout.split()
    return {"python": {"version": platform.python_version(), "packages": freeze}}


def create_runtime(package: ModelPackage) -> Runtime:
    from meshserve.core.runtimes import runtime_entry

    return runtime_entry(package.manifest.runtime).runtime_class()()
