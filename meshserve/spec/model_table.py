"""The models the router serves and where to send each one's requests.

`meshserve up` writes this table as JSON; the router reads it at start. Each version
names its package (for the signature) and the address of its adapter. When the mesh
runs Envoy, `mesh_address` is Envoy's mesh listener and every request goes there,
carrying the model (and version, if the client named one) in headers for Envoy to route.
Each version also lists every replica's address (the router sums their statistics), and
`unavailable` lists the packages found but not served, with the reason (repository index).

While the mesh runs, the launcher rewrites the table (atomically, with a higher `generation`)
when it has loaded a package from the models folder; the router reloads it
(router/table_reload.py) and acknowledges each generation it serves in `models.json.loaded`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from meshserve.core.errors import ModelNotFound, quoted
from meshserve.core.model_package import ModelPackage, load_package
from meshserve.spec.table_control import TableControl


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
    control: TableControl = field(default_factory=TableControl)
    unavailable: list[UnavailableModel] = field(default_factory=list)
    generation: int = 0  # raised by each rewrite of a running mesh's table

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
        control = TableControl.model_validate(raw.get("control") or {})
        return cls(models, raw.get("mesh_address"), control, unavailable, int(raw.get("generation", 0)))

    def take_in(self, newer: "ModelTable") -> list[tuple[str, str]]:
        """Serve what NEWER adds (models, versions) and its list of unavailable packages; returns the
        (model, version) pairs added. Versions served already keep their entry: a running adapter
        still runs the package it loaded, even if its files changed on disk since."""
        added = []
        for name, model in newer.models.items():
            mine = self.models.get(name)
            if mine is None:
                added += [(name, version) for version in model.versions]
                model = ModelEntry(name, dict(model.versions), model.default_version)
            else:
                fresh = {v: e for v, e in model.versions.items() if v not in mine.versions}
                added += [(name, version) for version in fresh]
                # One new dict swapped in: a request in flight holds the entry it resolved already.
                model = ModelEntry(name, {**mine.versions, **fresh}, mine.default_version)
            self.models = {**self.models, name: model}
        self.unavailable = list(newer.unavailable)
        self.control = newer.control
        self.generation = newer.generation
        return added

    @staticmethod
    def write(path: str | Path, packages_with_addresses: list[tuple[ModelPackage, str | list[str]]],
              mesh_address: str | None = None, control: TableControl | None = None,
              unavailable: list[UnavailableModel] | None = None, generation: int = 0,
              default_versions: dict[str, str] | None = None) -> None:
        """Each package with its adapter's address, or every replica's (the first is the address).
        A model's default version (what a request naming none is checked against) is its newest,
        unless DEFAULT_VERSIONS names one."""
        by_name: dict[str, list[dict]] = {}
        for package, addresses in packages_with_addresses:
            addresses = [addresses] if isinstance(addresses, str) else list(addresses)
            by_name.setdefault(package.name, []).append(
                {"version": package.version, "package": str(package.directory), "address": addresses[0],
                 "replicas": addresses})
        table = {
            "models": [{"name": name,
                        "default_version": (default_versions or {}).get(name) or newest([v["version"] for v in versions]),
                        "versions": versions}
                       for name, versions in sorted(by_name.items())],
            **({"generation": generation} if generation else {}),  # a table never rewritten has none
            "mesh_address": mesh_address,
            "control": (control or TableControl()).as_json(),
            "unavailable": [vars(u) for u in unavailable or ()],
        }
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(table, indent=2))
        tmp.replace(path)


def loaded_path(table_path: str | Path) -> Path:
    """Where the router acknowledges the table generation it serves (routes included)."""
    return Path(f"{table_path}.loaded")


def loaded_generation(table_path: str | Path) -> int:
    try:
        return int(json.loads(loaded_path(table_path).read_text())["generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def acknowledge(table_path: str | Path, generation: int) -> None:
    path = loaded_path(table_path)
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps({"generation": generation}))
    tmp.replace(path)


def newest(versions: list[str]) -> str:
    """The highest version in natural order ("10" after "9", "1.10" after "1.9")."""
    def key(version: str):
        return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[._\-]", version)]
    return max(versions, key=key)
