"""What the drift monitor watches: per model, its policy (from meshserve.yaml) and each version's baseline.

`meshserve up` writes the plan as JSON for the recorder; `meshserve drift` builds the same from a
folder of packages. Plain data, so the monitor needs neither the deployment spec nor the packages.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from meshserve.core.errors import ManifestError
from meshserve.sidecars.drift.baseline import read_baseline
from meshserve.sidecars.drift.columns import columns_of, former_names


@dataclass(frozen=True)
class DriftPolicy:
    """One model's thresholds and windows (the fields of meshserve.yaml `models.NAME.drift`)."""

    psi_threshold: float = 0.2
    alpha: float = 0.01
    window_rows: int = 1000
    window_s: float = 3600.0
    min_samples: int = 200
    ignore: tuple[str, ...] = ()  # columns (or whole tensors) not judged

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> DriftPolicy:
        values = {f.name: settings[f.name] for f in fields(cls) if f.name in settings}
        return cls(**values | {"ignore": tuple(values.get("ignore", ()))})


@dataclass
class ModelPlan:
    model: str
    policy: DriftPolicy
    baselines: dict[str, str] = field(default_factory=dict)  # version -> path of its baseline file


def plan_for(packages: list[Any], drift_settings: dict[str, dict[str, Any]]) -> list[ModelPlan]:
    """Plans for every model with a baseline; DRIFT_SETTINGS maps a model to its `drift:` settings
    (a model without an entry gets the defaults)."""
    plans: dict[str, ModelPlan] = {}
    for package in sorted(packages, key=lambda p: (p.name, p.version)):
        settings = drift_settings.get(package.name, {})
        if package.manifest.baseline is None or not settings.get("enabled", True):
            continue
        plan = plans.setdefault(package.name, ModelPlan(package.name, DriftPolicy.from_settings(settings)))
        path = package.path(package.manifest.baseline)
        check_baseline(path, package.manifest.signature)
        plan.baselines[package.version] = str(path)
    return list(plans.values())


def check_baseline(path: Path, signature: Any) -> None:
    """Refuse a baseline file the monitor could not read or that describes other columns than the
    signature's (a signature changed without a new baseline), before any process starts."""
    fix = "make it again with `meshserve baseline DIR --data TRAINING_DATA`"
    try:
        baseline = read_baseline(path)
    except (ValidationError, ValueError, OSError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ManifestError(str(path), "(file)", f"not a readable baseline ({problem})", fix) from exc
    known = {(spec.name, column) for spec in signature.inputs + signature.outputs
             for column in (columns_of(spec) or []) + former_names(spec)}
    for feature in baseline.features:
        if (feature.tensor, feature.column) not in known:
            raise ManifestError(str(path), "features", f"column '{feature.column}' of '{feature.tensor}' is not in "
                                "the package's signature", fix)


def write_plan(plans: list[ModelPlan], path: Path) -> None:
    path.write_text(json.dumps([asdict(p) for p in plans], indent=2))


def read_plan(path: Path) -> list[ModelPlan]:
    return [ModelPlan(p["model"], DriftPolicy.from_settings(p["policy"]), p["baselines"])
            for p in json.loads(path.read_text())]
