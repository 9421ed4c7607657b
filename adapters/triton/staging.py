"""Triton answers under the mesh's own model name and version, so Envoy can send clients straight to it.

Clients name a model as the mesh knows it (model.yaml's `name` and `version`: `digits-triton`
version "1"); Triton knows it by its repository folder (`digits_mlp`) and numeric version
folders. For the one-hop path (Envoy routes a ModelInfer by its body directly to Triton's gRPC
port) Triton itself must answer the mesh's name and version.

How: a private repository, given to tritonserver as a second `--model-repository`, holding one
Triton *ensemble* named after the package, whose version folder is the package's version and
whose single step forwards every input and output to the real model at the chosen version.
Why an ensemble rather than a renamed copy of the model: the model keeps its own name, instances
and statistics (Triton's batch statistics, perf_analyzer, tools that call it by its folder name
keep working), and the alias costs no second set of instances on the GPU. Its inputs and outputs
are copied from the configuration Triton completed when it loaded the model, so a config.pbtxt
that leaves them to Triton's auto-complete is covered too.

Not staged (the model then stays behind the adapter, which still answers under the mesh's name):
an external Triton (`triton.server`: not ours to change), a package version that is not a
decimal integer (Triton versions are numbers), a package named like a folder of its repository
(one name, two models), or a package whose name is the Triton name but whose version is not the
served one.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from meshserve.core.model_package import ModelPackage


@dataclass(frozen=True)
class TritonName:
    """The name and version Triton answers a package under, and whether that is the mesh's own."""

    name: str
    version: str  # "" lets Triton's version policy choose
    mesh_named: bool  # True: a stock client naming the package's name and version reaches Triton directly
    reason: str = ""  # why not, when not


def mesh_version(version: str) -> bool:
    """Whether a package version can be a Triton version folder: a decimal integer from 1, no leading zero."""
    return version.isdigit() and version == str(int(version)) and int(version) >= 1


def chosen_version(model_dir: Path, configured: str) -> str:
    """The version folder served: model.yaml's `model_version`, else the newest numbered folder."""
    if configured:
        return configured
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return str(max(versions)) if versions else ""


def plan(package: ModelPackage) -> TritonName:
    """How Triton will know this package (before anything starts)."""
    options = package.options
    real = TritonName(options.model_name, options.model_version, mesh_named=False)
    if options.model_repository is None:
        return _not(real, "an external Triton (triton.server) is not meshserve's to rename")
    if not mesh_version(package.version):
        return _not(real, f"the package version '{package.version}' is not a decimal integer, which Triton "
                          "versions are")
    repository = package.path(options.model_repository)
    served = chosen_version(repository / options.model_name, options.model_version)
    if package.name == options.model_name:
        if served == package.version:
            return TritonName(package.name, package.version, mesh_named=True)
        return _not(real, f"Triton serves {package.name} as version {served}, not the package's {package.version}; "
                          "name the version folder after the package version")
    if (repository / package.name).exists():
        return _not(real, f"{repository / package.name} is another model of the repository, named as the package")
    return TritonName(package.name, package.version, mesh_named=True)


def _not(real: TritonName, reason: str) -> TritonName:
    return TritonName(real.name, real.version, mesh_named=False, reason=reason)


def ensemble_config(mesh: TritonName, real_config, real_version: str):
    """A Triton ensemble named MESH that forwards every tensor to the model REAL_CONFIG describes."""
    from tritonclient.grpc import model_config_pb2 as mc

    config = mc.ModelConfig(name=mesh.name, platform="ensemble", max_batch_size=real_config.max_batch_size)
    step = config.ensemble_scheduling.step.add(model_name=real_config.name,
                                               model_version=int(real_version) if real_version else -1)
    for tensor in real_config.input:
        config.input.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims, optional=tensor.optional)
        step.input_map[tensor.name] = tensor.name
    for tensor in real_config.output:
        config.output.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
        step.output_map[tensor.name] = tensor.name
    return config


class StagedRepository:
    """The private repository holding the mesh-named ensemble; removed when the adapter stops."""

    def __init__(self, label: str):
        self.path = Path(tempfile.mkdtemp(prefix=f"meshserve-{label}-stage-"))

    def write(self, mesh: TritonName, real_config, real_version: str) -> None:
        from google.protobuf import text_format

        model_dir = self.path / mesh.name
        (model_dir / mesh.version).mkdir(parents=True, exist_ok=True)  # an ensemble's version folder is empty
        text = text_format.MessageToString(ensemble_config(mesh, real_config, real_version))
        partial = model_dir / "config.pbtxt.partial"
        partial.write_text(text)
        partial.replace(model_dir / "config.pbtxt")

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
