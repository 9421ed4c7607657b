"""Making a package's baseline: from a table of training data to `baseline.json` named in model.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshserve.sidecars.drift.baseline import BASELINE_FILE, Baseline, compute_baseline, write_baseline
from meshserve.sidecars.drift.training_data import baseline_columns, read_table


def make_baseline(package: Any, data: Path | dict[str, list], source: str | None = None,
                  score_outputs: bool = True) -> tuple[Baseline, Path]:
    """The baseline of PACKAGE from DATA (a file, or column name -> values) and where it belongs.

    Names the file in model.yaml (`baseline: baseline.json`) when model.yaml names none yet.
    """
    if isinstance(data, dict):
        table, source = data, source or "(table)"
    else:
        table, source = read_table(Path(data)), source or str(data)
    baseline = compute_baseline(baseline_columns(package, table, source, score_outputs), source=Path(source).name)
    name = package.manifest.baseline or BASELINE_FILE
    if package.manifest.baseline is None:
        _name_in_manifest(package.manifest_path, name)
    return baseline, package.path(name)


def write_package_baseline(package_dir: str | Path, data: Path | dict[str, list], source: str | None = None) -> Path:
    """What a training script calls after saving its model: compute and write the package's baseline."""
    from meshserve.core.model_package import load_package

    baseline, path = make_baseline(_load_without_baseline_check(Path(package_dir)), data, source)
    write_baseline(baseline, path)
    load_package(package_dir)  # the package still loads, with its baseline
    return path


def _load_without_baseline_check(directory: Path):
    """The package as it is, even when model.yaml names a baseline file not made yet (the first training)."""
    from meshserve.core.errors import ManifestError
    from meshserve.core.model_package import load_package

    try:
        return load_package(directory)
    except ManifestError as exc:
        if exc.field != "baseline":
            raise
        import yaml

        manifest = directory / "model.yaml"
        name = yaml.safe_load(manifest.read_text())["baseline"]
        (directory / name).write_text('{"features": []}\n')  # a placeholder, replaced at once
        return load_package(directory)


def _name_in_manifest(manifest_path: Path, name: str) -> None:
    text = manifest_path.read_text()
    if not text.endswith("\n"):
        text += "\n"
    text += f"baseline: {name}  # training data's feature statistics for drift (meshserve baseline; docs/drift.md)\n"
    tmp = manifest_path.with_suffix(".yaml.tmp")
    tmp.write_text(text)
    tmp.replace(manifest_path)
