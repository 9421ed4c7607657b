"""The exact distributions a Python model needs, as `name==version` lines.

Two sources: a requirements or lock file with every version pinned (pip freeze, `uv pip compile`,
pip-compile output with hashes), or the training virtual environment itself, listed by its own
interpreter so nothing of meshserve's environment leaks in. An unpinned line is refused by line
number: a model served with other versions than it was trained with may load and answer wrongly.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from meshserve.core.errors import ManifestError

# Tooling in every virtual environment; a model never needs these to load.
TOOLING = frozenset({"pip", "setuptools", "wheel", "uv"})

# Run by the training environment's own interpreter: its Python version and every distribution,
# with a flag for those installed from a local path or VCS (no index can give them back).
_LIST_DISTRIBUTIONS = r"""
import importlib.metadata, json, platform
found = []
for dist in importlib.metadata.distributions():
    name = dist.metadata["Name"]
    if not name:
        continue
    url = dist.read_text("direct_url.json")
    local = bool(url) and "archive_info" not in json.loads(url)
    found.append({"name": name, "version": dist.version, "local": local})
print(json.dumps({"python": platform.python_version(), "distributions": found}))
"""


class RequirementsError(ManifestError):
    """A requirements file or training environment that cannot be pinned; one message naming what and the fix."""

    def __init__(self, message: str):
        ValueError.__init__(self, message)  # the message already names the file (or option) and the fix
        self.path, self.field, self.problem, self.fix = "", "", message, ""


@dataclass(frozen=True)
class CapturedRequirements:
    python: str  # the Python version, e.g. "3.11.7"
    requirements: list[str]  # sorted "name==version" (with extras and markers as written)
    skipped: list[str]  # what was left out and why, for the user to see


def pinned_line(line: str) -> Requirement | None:
    """The requirement on one line of a requirements file, or None for blanks and comments."""
    text = line.split(" #", 1)[0].strip()
    if not text or text.startswith("#"):
        return None
    text = text.split(" --hash", 1)[0].strip()  # lock files carry hashes after the pin
    return Requirement(text)


def is_pinned(requirement: Requirement) -> bool:
    specifiers = list(requirement.specifier)
    return len(specifiers) == 1 and specifiers[0].operator in ("==", "===") and "*" not in specifiers[0].version


def requirement_lines(text: str, problems: list[str]) -> Iterator[tuple[int, str, Requirement]]:
    """(line number, line, requirement) for each requirement of a requirements file's TEXT.

    Lines no environment can be built from (options and includes, what is not a requirement,
    a URL a mesh cannot fetch again) go into PROBLEMS, each naming its line; pinning is the
    caller's to judge. Continuation lines (a lock file's hashes) join their requirement.
    """
    for number, line in enumerate(text.replace("\\\n", " ").splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("--hash"):
            continue
        if stripped.startswith("-"):
            problems.append(f"line {number} '{stripped}': options and includes are not read; list the "
                            "pinned requirements themselves (e.g. `uv pip compile` output)")
            continue
        try:
            requirement = pinned_line(line)
        except InvalidRequirement as exc:
            problems.append(f"line {number} '{stripped}': not a requirement ({exc})")
            continue
        if requirement is None:
            continue
        if requirement.url:
            problems.append(f"line {number} '{stripped}': installed from {requirement.url}, which a mesh cannot "
                            "fetch again; publish it to an index or put its code in the package")
            continue
        yield number, stripped, requirement


def read_requirements(path: str | Path) -> list[str]:
    """Every requirement of FILE, each pinned with ==; raise RequirementsError naming each line that is not."""
    path = Path(path)
    try:
        raw = path.read_text()
    except OSError as exc:
        raise RequirementsError(f"{path}: cannot read the requirements file ({exc.strerror}); "
                                "pass a file written by `pip freeze` or `uv pip compile`") from exc
    problems, found = [], {}
    for number, stripped, requirement in requirement_lines(raw, problems):
        if not is_pinned(requirement):
            problems.append(f"line {number} '{stripped}' is not pinned: write {requirement.name}==VERSION")
            continue
        found[canonicalize_name(requirement.name)] = str(requirement)
    if problems:
        raise RequirementsError(f"{path}: " + "; ".join(problems)
                                + " (`pip freeze` or `uv pip compile` in the training environment gives exact versions)")
    if not found:
        raise RequirementsError(f"{path}: no requirements in the file; list what the model needs, pinned with ==")
    return sorted(found.values(), key=str.lower)


def venv_requirements(venv: str | Path) -> CapturedRequirements:
    """The Python version and every distribution of a virtual environment, asked of its own interpreter."""
    venv = Path(venv)
    python = venv / "bin" / "python"
    if not python.exists():
        raise RequirementsError(f"{venv}: no bin/python here; pass the training virtual environment's folder "
                                "(the one holding bin/ and lib/)")
    result = subprocess.run([str(python), "-c", _LIST_DISTRIBUTIONS], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RequirementsError(f"{python} could not list its distributions ({last})")
    listed = json.loads(result.stdout)
    requirements, skipped = {}, []
    for dist in listed["distributions"]:
        key = canonicalize_name(dist["name"])
        if key in TOOLING or key == "meshserve":
            continue
        if dist["local"]:
            skipped.append(f"{dist['name']} (installed from a local path or VCS: put its code in the package)")
            continue
        requirements[key] = f"{dist['name']}=={dist['version']}"
    if not requirements:
        raise RequirementsError(f"{venv}: no distributions installed there; pass the environment the model was "
                                "trained in")
    return CapturedRequirements(listed["python"], sorted(requirements.values(), key=str.lower), skipped)


def requirement_name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def pinned_versions(requirements: list[str]) -> dict[str, str]:
    """name (canonical) -> pinned version, for messages comparing what a model needs with what is there."""
    versions = {}
    for line in requirements:
        requirement = Requirement(line)
        specifier = next(iter(requirement.specifier), None)
        if specifier is not None:
            versions[canonicalize_name(requirement.name)] = specifier.version
    return versions
