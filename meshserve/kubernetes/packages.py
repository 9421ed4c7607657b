"""The model packages a cluster will serve, read from their model.yaml alone.

Rendering needs each package's name, version, runtime and folder, not its trained files:
those are inside the image, built elsewhere. So only the manifest is read and checked here;
the image's `meshserve check` (run when the image is built) checks the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml
from pydantic import ValidationError

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import MANIFEST_NAME, Manifest
from meshserve.core.strict_model import manifest_error


@dataclass(frozen=True)
class PackageRef:
    """One model package as the cluster sees it: `directory` is its path inside the image."""

    name: str
    version: str
    runtime: str
    directory: PurePosixPath


def read_packages(models_dir: Path, root_in_image: PurePosixPath) -> list[PackageRef]:
    """Every package under MODELS_DIR, with its folder mapped under ROOT_IN_IMAGE."""
    models_dir = models_dir.resolve()
    manifests = sorted(Path(d) / MANIFEST_NAME for d, _, files in os.walk(models_dir, followlinks=True)
                       if MANIFEST_NAME in files and "node_modules" not in Path(d).parts)
    if not manifests:
        raise ManifestError(str(models_dir), "(path)", "no model.yaml found", "point at a folder of model packages")
    packages: dict[tuple[str, str], PackageRef] = {}
    for path in manifests:
        try:
            manifest = Manifest.model_validate(yaml.safe_load(path.read_text()))
        except (yaml.YAMLError, ValidationError) as exc:
            if isinstance(exc, yaml.YAMLError):
                raise ManifestError(str(path), "(file)", f"not valid YAML: {exc}", "fix the YAML syntax") from exc
            raise manifest_error(str(path), exc, default_fix="correct model.yaml (see docs/model-package.md)") from exc
        key = (manifest.name, manifest.version)
        if key in packages:
            raise ManifestError(str(path), "version", f"{manifest.name} version {manifest.version} is packaged twice",
                                "give each package of the same model its own version")
        relative = path.parent.relative_to(models_dir).as_posix()
        packages[key] = PackageRef(manifest.name, manifest.version, manifest.runtime,
                                   root_in_image / relative if relative != "." else root_in_image)
    return list(packages.values())
