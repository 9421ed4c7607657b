"""The `toy:` section of model.yaml, and the toy runtime's facts."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from meshserve.adapters.runtime import ReplicaResources, RuntimeOptions
from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage


class ToyOptions(RuntimeOptions):
    factor: float = Field(description="What every input is multiplied by.")
    lanes: int = Field(default=3, ge=1, description="Requests one replica scores at once.")

    resources: ClassVar[ReplicaResources] = ReplicaResources(cpu="50m", memory="64Mi", memory_limit="128Mi",
                                                             startup_s=10)

    def working_slots(self) -> int:
        return self.lanes

    @classmethod
    def describe_environment(cls, recorded: dict[str, Any]) -> str:
        return f"toy world {recorded.get('version')}"

    def check_package(self, package: ModelPackage) -> None:
        signature = package.manifest.signature
        if [s.name for s in signature.inputs] != [s.name for s in signature.outputs]:
            raise ManifestError(str(package.manifest_path), "signature.outputs",
                                "the toy runtime answers each input under the same name",
                                "declare one output per input, named like it")
