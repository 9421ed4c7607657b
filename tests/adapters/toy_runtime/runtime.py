"""The toy runtime: each output is its input times the package's `toy.factor`."""

from __future__ import annotations

from meshserve.adapters.runtime import Runtime, Tensors
from meshserve.core.model_package import ModelPackage


class ToyRuntime(Runtime):
    async def load(self, package: ModelPackage) -> None:
        self.package = package
        self.factor = package.options.factor

    async def predict(self, inputs: Tensors) -> Tensors:
        return {name: values * self.factor for name, values in inputs.items()}
