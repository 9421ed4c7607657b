"""What a model package's own Python environment is made of, and the digest it is cached under.

A package has its own environment when it is a Python package whose model.yaml records
`environment.python.requirements` (`meshserve package --requirements/--from-venv`). The
environment holds those pins, resolved together with what meshserve's adapter server needs
(`adapters/python/adapter-requirements.txt`), and meshserve itself installed without its
dependencies. Its digest covers all of it, so any change builds a new environment and an
unchanged package reuses the one built before.

The adapter's share is kept to what it imports, with ranges rather than pins, so a team's own
versions win wherever they can. tritonclient is the one exception to resolving together: the
adapter needs only its generated protobuf modules (and what `tritonclient.grpc` imports on the
way to them, listed in adapter-requirements.txt), while its metadata pins protobuf<7 and
ml-dtypes<=0.5.4 for its client. It is installed without its dependencies, like meshserve.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

import meshserve
from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage


def adapter_requirements() -> list[str]:
    """The adapter server's own requirements, as declared in adapter-requirements.txt."""
    from meshserve.adapters import python as python_adapter

    path = Path(python_adapter.__file__).parent / "adapter-requirements.txt"
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


# Adapter requirements installed without their dependencies (see the module's docstring).
WITHOUT_DEPENDENCIES = frozenset({"tritonclient"})


def meshserve_source() -> list[str]:
    """How meshserve itself goes into a model's environment (without dependencies): editable
    from this checkout when running from one, so the adapter code is always the running code."""
    root = Path(meshserve.__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "adapters" / "server.py").is_file():
        return ["-e", str(root)]
    return [f"meshserve=={meshserve.__version__}"]


@dataclass(frozen=True)
class EnvironmentSpec:
    label: str  # the package it is for, "name:version", for messages
    python: str  # "3.11": environments are built per minor version
    requirements: tuple[str, ...]  # the model's pins, sorted
    adapter: tuple[str, ...]  # what the adapter server needs
    meshserve: tuple[str, ...]  # how meshserve is installed into it
    manifest_path: str

    @property
    def resolved_adapter(self) -> tuple[str, ...]:
        """The adapter's requirements resolved together with the model's pins."""
        return tuple(r for r in self.adapter if _name(r) not in WITHOUT_DEPENDENCIES)

    @property
    def unresolved_adapter(self) -> tuple[str, ...]:
        """The adapter's requirements installed as they are, without their dependencies (no extras then)."""
        return tuple(re.sub(r"\[[^\]]*\]", "", r) for r in self.adapter if _name(r) in WITHOUT_DEPENDENCIES)

    def direct_clashes(self) -> list[tuple[str, str, str]]:
        """(name, the model's pin, the adapter's range) for each package the two sides pin apart."""
        adapter = {_name(r): r for r in self.resolved_adapter}
        clashes = []
        for line in self.requirements:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:  # a hand-written line: uv names it when the build reads it
                continue
            wanted = adapter.get(canonicalize_name(requirement.name))
            pinned = next(iter(requirement.specifier), None)
            if wanted is None or pinned is None or pinned.operator not in ("==", "===") or requirement.marker:
                continue
            if not Requirement(wanted).specifier.contains(pinned.version, prereleases=True):
                clashes.append((canonicalize_name(requirement.name), line, wanted))
        return clashes

    @property
    def digest(self) -> str:
        text = json.dumps({"python": self.python, "requirements": sorted(self.requirements),
                           "adapter": sorted(self.adapter), "meshserve": list(self.meshserve),
                           "meshserve_version": meshserve.__version__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def spec_for(package: ModelPackage) -> EnvironmentSpec | None:
    """The package's own environment, or None when it runs in meshserve's (no recorded requirements)."""
    if package.manifest.runtime != "python":
        return None
    recorded = (package.manifest.environment or {}).get("python")
    if not isinstance(recorded, dict) or recorded.get("requirements") is None:
        return None
    where = str(package.manifest_path)
    requirements = recorded["requirements"]
    if not isinstance(requirements, list) or not all(isinstance(r, str) and r.strip() for r in requirements):
        raise ManifestError(where, "environment.python.requirements", "must be a list of name==version lines",
                            "re-run `meshserve package DIR --requirements FILE` (or --from-venv PATH)")
    version = str(recorded.get("version") or "")
    parts = version.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise ManifestError(where, "environment.python.version", f"'{version}' is not a Python version",
                            "write the version the model was trained with, e.g. 3.11.7, or re-run `meshserve package`")
    return EnvironmentSpec(label=f"{package.name}:{package.version}", python=".".join(parts[:2]),
                           requirements=tuple(sorted(requirements, key=str.lower)),
                           adapter=tuple(adapter_requirements()), meshserve=tuple(meshserve_source()),
                           manifest_path=where)


def _name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def check_recorded(package: ModelPackage) -> None:
    """Refuse a malformed `environment.python` block when the package is read, before anything starts."""
    spec_for(package)
