"""The models the router serves and where to send each one's requests.

`meshserve up` writes this table as JSON; the router reads it at start. Each version
names its package (for the signature) and the address of its adapter. When the mesh
runs Envoy, `mesh_address` is Envoy's mesh listener and every request goes there,
carrying the model (and version, if the client named one) in headers for Envoy to route.
Each version also lists every replica's address (the router sums their statistics), and
`unavailable` lists the packages found but not served, with the reason (repository index).
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
    replicas: list[str] = field(default_factory=list)  # every replica's address (address is the first)

    def __post_init__(self) -> None:
        self.replicas = self.replicas or [self.address]


@dataclass(frozen=True)
class UnavailableModel:
    """A package found but not served: broken, or not deployed by meshserve.yaml."""

    name: str
    version: str
    reason: str


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
    unavailable: list[UnavailableModel] = field(default_factory=list)

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
            versions = {v["version"]: VersionEntry(load_package(v["package"]), v["address"], v.get("replicas", []))
                        for v in model["versions"]}
            models[model["name"]] = ModelEntry(model["name"], versions,
                                               model.get("default_version") or newest(list(versions)))
        unavailable = [UnavailableModel(**u) for u in raw.get("unavailable", [])]
        return cls(models, raw.get("mesh_address"), raw.get("control", {}), unavailable)

    @staticmethod
    def write(path: str | Path, packages_with_addresses: list[tuple[ModelPackage, str | list[str]]],
              mesh_address: str | None = None, control: dict | None = None,
              unavailable: list[UnavailableModel] | None = None) -> None:
        """Each package with its adapter's address, or every replica's (the first is the address)."""
        by_name: dict[str, list[dict]] = {}
        for package, addresses in packages_with_addresses:
            addresses = [addresses] if isinstance(addresses, str) else list(addresses)
            by_name.setdefault(package.name, []).append(
                {"version": package.version, "package": str(package.directory), "address": addresses[0],
                 "replicas": addresses})
        table = {
            "models": [{"name": name, "default_version": newest([v["version"] for v in versions]), "versions": versions}
                       for name, versions in sorted(by_name.items())],
            "mesh_address": mesh_address,
            "control": control or {},
            "unavailable": [vars(u) for u in unavailable or ()],
        }
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(table, indent=2))
        tmp.replace(path)


def newest(versions: list[str]) -> str:
    """The highest version in natural order ("10" after "9", "1.10" after "1.9")."""
    def key(version: str):
        return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[._\-]", version)]
    return max(versions, key=key)
