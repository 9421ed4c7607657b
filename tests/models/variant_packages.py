"""Write model packages of tests/models/variant_model.py, one per version, for traffic tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

MODEL_SOURCE = Path(__file__).with_name("variant_model.py")


def write_variant_packages(root: Path, model: str, versions: list[str]) -> Path:
    """ROOT/MODEL-VERSION/ for each version: a python package echoing input `x` as output `y`."""
    root.mkdir(parents=True, exist_ok=True)
    for version in versions:
        package = root / f"{model}-{version}"
        package.mkdir(exist_ok=True)
        shutil.copy(MODEL_SOURCE, package / "variant_model.py")
        (package / "model.yaml").write_text(yaml.safe_dump({
            "name": model,
            "version": version,
            "runtime": "python",
            "entrypoint": "variant_model:predict",
            "description": f"test variant {version}: echoes x as y",
            "signature": {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}],
                "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
            },
            # The model sleeps or raises on purpose for some versions: run it on the loop's threads.
            "python": {"threads": 4},
        }, sort_keys=False))
    return root


def write_spec(root: Path, spec: dict) -> Path:
    path = root / "meshserve.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
