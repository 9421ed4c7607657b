"""The models the router serves and where to send each one's requests.

`meshserve up` writes this table as JSON; the router reads it at start. Each version
names its package (for the signature) and the address of its adapter. When the mesh
runs Envoy, `mesh_address` is Envoy's mesh listener and every request goes there,
carrying the model (and version, if the client named one) in headers for Envoy to route.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from meshserve.core.errors import ModelNotFound, quoted
from meshserve.core.model_package import ModelPackage, load_package


@dataclass
class VersionEntry:
    package: ModelPackage
    address: str


@dataclass
class ModelEntry:
    name: str
    versions: dict[str, VersionEntry]
    default_version: str

    def version(self, version: str) -> VersionEntry:
        if not version:
            return self.versions[self.default_version]
        if version not in self.versions:
            raise ModelNotFound(f"model '{self.name}' has no version '{quoted(version)}'; "
                                f"versions served: {', '.join(self.versions)}")
        return self.versions[version]


@dataclass
class ModelTable:
    models: dict[str, ModelEntry]
    mesh_address: str | None = None
    control: dict = field(default_factory=dict)

    def model(self, name: str) -> ModelEntry:
        if name not in self.models:
            served = ", ".join(sorted(self.models)) or "none"
            raise ModelNotFound(f"model '{quoted(name)}' is not served here; models served: {served}")
        return self.models[name]

    def package_of(self, name: str, version: str) -> ModelPackage | None:
        """The package of NAME at VERSION (its default version when empty), None when not served."""
        model = self.models.get(name)
        if model is None:
            return None
        entry = model.versions.get(version or model.default_version)
        return entry.package if entry is not None else None

    @classmethod
    def read(cls, path: str | Path) -> "ModelTable":
        raw = json.loads(Path(path).read_text())
        models = {}
        for model in raw["models"]:
            versions = {v["version"]: VersionEntry(load_package(v["package"]), v["address"]) for v in model["versions"]}
            models[model["name"]] = ModelEntry(model["name"], versions,
                                               model.get("default_version") or newest(list(versions)))
        return cls(models, raw.get("mesh_address"), raw.get("control", {}))

    @staticmethod
    def write(path: str | Path, packages_with_addresses: list[tuple[ModelPackage, str]],
              mesh_address: str | None = None, control: dict | None = None) -> None:
        by_name: dict[str, list[dict]] = {}
        for package, address in packages_with_addresses:
            by_name.setdefault(package.name, []).append(
                {"version": package.version, "package": str(package.directory), "address": address})
        table = {
            "models": [{"name": name, "default_version": newest([v["version"] for v in versions]), "versions": versions}
                       for name, versions in sorted(by_name.items())],
            "mesh_address": mesh_address,
            "control": control or {},
        }
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(table, indent=2))
        tmp.replace(path)


def newest(versions: list[str]) -> str:
    """The highest version in natural order ("10" after "9", "1.10" after "1.9")."""
    def key(version: str):
        return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[._\-]", version)]
    return max(versions, key=key)
