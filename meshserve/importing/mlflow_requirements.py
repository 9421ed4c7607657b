"""The pinned requirements of an MLflow model, from the requirements.txt MLflow wrote beside it.

An unpinned line takes the version recorded for the same distribution in the model's conda.yaml or
python_env.yaml when one pins it; otherwise it is refused by line, since a model served with other
versions than it was trained with may load and answer wrongly. The Python version comes from
python_env.yaml (or MLmodel's python_function flavour).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement
from packaging.utils import canonicalize_name

from meshserve.environments.requirements import is_pinned, pinned_line, requirement_lines
from meshserve.importing.model_uri import ImportFailure

# Distributions only a served sklearn flavour can do without: its model file is loaded directly.
MLFLOW_ITSELF = frozenset({"mlflow", "mlflow-skinny"})


def _yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text()) if path.is_file() else None
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def recorded_pins(model_dir: Path) -> dict[str, str]:
    """canonical name -> pinned line, from conda.yaml's pip list and python_env.yaml's dependencies."""
    lines: list[str] = []
    for entry in _yaml(model_dir / "conda.yaml").get("dependencies") or []:
        if isinstance(entry, dict):
            lines += [p for p in entry.get("pip") or [] if isinstance(p, str)]
    python_env = _yaml(model_dir / "python_env.yaml")
    lines += [p for p in (python_env.get("dependencies") or []) + (python_env.get("build_dependencies") or [])
              if isinstance(p, str)]
    pins = {}
    for line in lines:
        try:
            requirement = pinned_line(line)
        except InvalidRequirement:
            continue
        if requirement is not None and is_pinned(requirement):
            pins[canonicalize_name(requirement.name)] = str(requirement)
    return pins


def python_version(model_dir: Path, mlmodel: dict[str, Any]) -> str:
    version = _yaml(model_dir / "python_env.yaml").get("python") or \
        ((mlmodel.get("flavors") or {}).get("python_function") or {}).get("python_version")
    if not version:
        raise ImportFailure(f"{model_dir}: neither python_env.yaml nor MLmodel says which Python the model was "
                            "saved with; log it again with a current MLflow, which records it")
    return str(version)


def model_requirements(model_dir: Path, drop: frozenset[str] = frozenset()) -> list[str]:
    """Every line of the model's requirements.txt, pinned; DROP names distributions left out."""
    path = model_dir / "requirements.txt"
    if not path.is_file():
        raise ImportFailure(f"{path}: MLflow wrote no requirements.txt for this model; log it again with "
                            "pip_requirements=[...] (pinned), so it can run in the environment it was trained in")
    fallback = recorded_pins(model_dir)
    found, problems = {}, []
    for number, stripped, requirement in requirement_lines(path.read_text(), problems):
        key = canonicalize_name(requirement.name)
        if key in drop:
            continue
        if is_pinned(requirement):
            found[key] = str(requirement)
        elif key in fallback:
            found[key] = fallback[key]
        else:
            problems.append(f"line {number} '{stripped}' is not pinned and neither conda.yaml nor python_env.yaml "
                            f"records its version: log the model with pip_requirements=['{requirement.name}==VERSION']")
    if problems:
        raise ImportFailure(f"{path}: " + "; ".join(problems))
    if not found:
        raise ImportFailure(f"{path}: no requirements; log the model with pip_requirements=[...] (pinned)")
    return sorted(found.values(), key=str.lower)
