"""The Runtime interface every model world implements (python, r, java, triton).

A runtime is small: load a package, turn named numpy arrays into named numpy arrays,
close. Everything else (gRPC, codecs, validation, batching, health) is the adapter
server's job, so a new world only has to write these three methods.

Errors: raise `meshserve.errors.InvalidInput` for input the model cannot take (it becomes
INVALID_ARGUMENT naming the input), `ModelUnavailable` when the runtime is gone; any other
exception becomes INTERNAL with its type and message.
"""

from __future__ import annotations

import abc
import contextvars
import importlib

import numpy as np

from meshserve.model_package import ModelPackage

Tensors = dict[str, np.ndarray]

# When the current request must be answered by (time.monotonic() seconds), from the caller's gRPC
# deadline; None when the caller set none. Runtimes that call another server pass it on.
request_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("request_deadline", default=None)


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


_RUNTIMES = {
    "python": "meshserve.adapters.python_runtime:PythonRuntime",
    "r": "meshserve.adapters.r_runtime:RRuntime",
    "java": "meshserve.adapters.java_runtime:JavaRuntime",
    "triton": "meshserve.adapters.triton_runtime:TritonRuntime",
}


def create_runtime(package: ModelPackage) -> Runtime:
    module_name, _, attr = _RUNTIMES[package.manifest.runtime].partition(":")
    return getattr(importlib.import_module(module_name), attr)()
