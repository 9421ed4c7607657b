"""Rows made up for a package without golden examples stay inside what its model takes, and a
correct version is never refused because a made-up row was: `meshserve check --load` (the deploy
gate's checks) on the bundled examples' own packages, their golden examples taken away."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import EXAMPLES, meshserve_argv
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from meshserve.core.model_package import discover_packages, load_package
from meshserve.deploy.golden import rows_for_package


def without_golden(example: str, tmp_path: Path, drop_limits: bool = False) -> Path:
    folder = tmp_path / example
    shutil.copytree(EXAMPLES / example, folder, symlinks=True)
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest.pop("golden", None)
    if drop_limits:
        for spec in manifest["signature"]["inputs"]:
            spec.pop("limits", None)
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (folder / "golden.json").unlink(missing_ok=True)
    return folder


def check_load(folder: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(meshserve_argv("check", "--load", str(folder)), capture_output=True, text=True,
                          timeout=180, env={**os.environ, "MESHSERVE_BUNDLE_CACHE": str(tmp_path / "cache")})


def write_onehot_package(folder: Path) -> None:
    frame = pd.DataFrame({"region": ["north", "south", "east"] * 10, "income": np.linspace(20.0, 90.0, 30)})
    pipeline = Pipeline([("columns", ColumnTransformer([("onehot", OneHotEncoder(), ["region"])],
                                                       remainder="passthrough")),
                         ("classify", LogisticRegression())]).fit(frame, np.arange(30) % 2)
    folder.mkdir()
    joblib.dump(pipeline, folder / "model.joblib")
    (folder / "model.yaml").write_text(yaml.safe_dump({
        "name": "regions", "version": "1", "runtime": "python", "entrypoint": "model.joblib",
        "signature": {"inputs": [{"name": "region", "datatype": "BYTES", "shape": [-1]},
                                 {"name": "income", "datatype": "FP64", "shape": [-1]}],
                      "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}]}}))


def test_made_up_rows_take_r_levels_declared_ranges_and_a_pipelines_own_categories(tmp_path):
    infert = rows_for_package(load_package(EXAMPLES / "r_infert_glm"), 3)
    assert [r["education"][0] for r in infert] == [b"0-5yrs", b"6-11yrs", b"12+ yrs"]
    loans = rows_for_package(load_package(EXAMPLES / "java_loan_default"), 4)
    assert all(row["applicant"][0, 2] >= 18 for row in loans), "age inside the declared range"
    write_onehot_package(tmp_path / "regions")
    regions = rows_for_package(load_package(tmp_path / "regions"), 3)
    assert sorted(r["region"][0] for r in regions) == [b"east", b"north", b"south"]


def test_check_load_scores_a_made_up_row_with_an_r_models_declared_levels(tmp_path):
    if shutil.which("Rscript") is None or not (EXAMPLES / "r_infert_glm" / "model.rds").exists():
        pytest.skip("R or the trained r_infert_glm example is missing (scripts/setup.sh)")
    result = check_load(without_golden("r_infert_glm", tmp_path), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "one row made up from the signature scored" in result.stdout, result.stdout


def test_check_load_scores_a_made_up_row_with_a_onehot_pipelines_own_categories(tmp_path):
    write_onehot_package(tmp_path / "regions")
    result = check_load(tmp_path / "regions", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "one row made up from the signature scored" in result.stdout, result.stdout


def test_a_made_up_row_the_model_refuses_warns_and_names_what_to_add_instead_of_failing(tmp_path):
    if not (EXAMPLES / "java_loan_default" / "build" / "loan-default.jar").exists():
        pytest.skip("the Java example is not built (scripts/setup.sh)")
    # Without its limits, nothing here says the model refuses an age under 18.
    result = check_load(without_golden("java_loan_default", tmp_path, drop_limits=True), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warn  golden: no golden examples recorded, and the model refused a row made up" in result.stdout
    assert "age must be >= 18" in result.stdout, "the model's own words"
    assert "--golden-from FILE" in result.stdout and "golden: golden.json" in result.stdout, result.stdout


def test_every_bundled_example_carries_golden_examples_for_each_of_its_inputs():
    for package in discover_packages(str(EXAMPLES)):
        assert package.manifest.golden, f"{package.name}:{package.version} has no golden examples"
        examples = json.loads(package.path(package.manifest.golden).read_text())["examples"]
        inputs = {s.name for s in package.manifest.signature.inputs}
        outputs = {s.name for s in package.manifest.signature.outputs}
        assert examples and all(set(e["inputs"]) == inputs and set(e["outputs"]) == outputs for e in examples)
