"""The Runtime interface every model world implements (python, r, java, triton).

A runtime is small: load a package, turn named numpy arrays into named numpy arrays,
close. Everything else (gRPC, codecs, validation, batching, health, observers) is the
adapter server's job, so a new world only has to write these methods and its options class,
and add one line to `runtimes.py`.

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
from typing import Any

import numpy as np

from meshserve.core.model_package import ModelPackage
from meshserve.core.strict_model import StrictModel

Tensors = dict[str, np.ndarray]

# When the current request must be answered by (time.monotonic() seconds), from the caller's gRPC
# deadline; None when the caller set none. Runtimes that call another server pass it on.
request_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("request_deadline", default=None)


class RuntimeOptions(StrictModel):
    """A runtime's own section of model.yaml (`python:`, `r:`, ...), checked before anything starts."""

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
        """The model's own Triton ModelConfig where its server keeps one (the Triton runtime);
        None lets the adapter describe the model from model.yaml."""
        return None

    @classmethod
    def capture_environment(cls, package: ModelPackage) -> dict[str, Any]:
        """What `meshserve package` records: by default the Python version and `pip freeze`."""
        return python_environment()


def python_environment() -> dict[str, Any]:
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                            capture_output=True, text=True, check=False).stdout.split()
    return {"python": {"version": platform.python_version(), "packages": freeze}}


def create_runtime(package: ModelPackage) -> Runtime:
    from meshserve.adapters.runtimes import runtime_entry

    return runtime_entry(package.manifest.runtime).runtime_class()()
