"""`meshserve check --load`: a model that would fail when served is caught before it serves.

Each case is a small package of the test's own (a Python echo model, an R linear model trained
at set-up), loaded by the real command in a fresh adapter process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import meshserve_argv
from models.variant_packages import write_variant_packages

R_MISSING = "R is not installed here (scripts/setup.sh installs it)"


def run(*args: str, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(meshserve_argv(*args), capture_output=True, text=True, timeout=180,
                          env={**os.environ, "MESHSERVE_BUNDLE_CACHE": str(cache)})


@pytest.fixture(scope="module")
def r_line(tmp_path_factory) -> Path:
    """An R package of a linear model y = 2x + 1, trained here with Rscript."""
    if shutil.which("Rscript") is None:
        pytest.skip(R_MISSING)
    folder = tmp_path_factory.mktemp("r-line") / "r-line"
    folder.mkdir()
    subprocess.run(["Rscript", "--vanilla", "-e",
                    'd <- data.frame(x = 1:20, y = 2 * (1:20) + 1); saveRDS(lm(y ~ x, d), "model.rds")'],
                   cwd=folder, check=True, timeout=60)
    (folder / "model.yaml").write_text(yaml.safe_dump({
        "name": "r-line", "version": "1", "runtime": "r",
        "signature": {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1],
                                  "limits": {"x": {"range": [0, 10]}}}],
                      "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}]},
        "r": {"columns": [{"name": "x", "type": "numeric"}]},
    }, sort_keys=False))
    return folder


def test_a_misspelled_predict_function_is_caught_naming_it(tmp_path):
    package = write_variant_packages(tmp_path, "echo", ["1"]) / "echo-1"
    manifest = package / "model.yaml"
    manifest.write_text(manifest.read_text().replace("variant_model:predict", "variant_model:predcit"))
    result = run("check", "--load", str(package), cache=tmp_path / "cache")
    assert result.returncode == 1, result
    assert "FAIL  echo:1 (python)" in result.stdout
    assert "FAIL  loads:" in result.stdout and "variant_model has no function predcit" in result.stdout
    assert "FAIL  golden: not run: the model did not load" in result.stdout
    assert "1 of 1 model(s) would fail when served" in result.stderr and "Traceback" not in result.stdout


def test_golden_examples_that_no_longer_hold_show_the_worst_row(tmp_path):
    package = write_variant_packages(tmp_path, "echo", ["1"]) / "echo-1"
    recorded = run("package", str(package), "--golden-rows", "3", cache=tmp_path / "cache")
    assert recorded.returncode == 0, recorded.stderr
    assert "3 golden examples from the signature's ranges" in recorded.stdout
    model = package / "variant_model.py"
    model.write_text(model.read_text().replace('return {"y": inputs["x"].astype(np.float32)}',
                                               'return {"y": inputs["x"].astype(np.float32) * 2}'))
    result = run("check", "--load", str(package), cache=tmp_path / "cache")
    assert result.returncode == 1, result
    assert "ok    loads: loaded in a fresh adapter" in result.stdout
    # Rows were 0.25, 0.5, 0.75: the last is the farthest from its recorded answer.
    assert ("FAIL  golden: 0 of 3 golden examples within tolerance 1e-06; worst: example 3, output 'y': "
            "expected [[0.75]], got [[1.5]] (difference 0.75)") in result.stdout


def test_an_r_package_that_is_not_installed_is_caught_naming_it(r_line, tmp_path):
    package = Path(shutil.copytree(r_line, tmp_path / "r-line"))
    manifest = yaml.safe_load((package / "model.yaml").read_text())
    manifest["r"]["packages"] = ["meshserveNoSuchPackage"]
    (package / "model.yaml").write_text(yaml.safe_dump(manifest))
    result = run("check", "--load", str(package), cache=tmp_path / "cache")
    assert result.returncode == 1, result
    assert "FAIL  loads:" in result.stdout
    assert "there is no package called ‘meshserveNoSuchPackage’. Fix: " in result.stdout
    assert "r-cran-meshservenosuchpackage" in result.stdout  # what Debian has, or how to install it without
    assert "Traceback" not in result.stdout


def test_an_r_bundle_loads_and_passes_its_golden_examples(r_line, tmp_path):
    packaged = run("package", str(r_line), "-o", str(tmp_path / "out"), cache=tmp_path / "cache")
    assert packaged.returncode == 0, packaged.stderr
    assert "R 4." in packaged.stdout and "8 golden examples" in packaged.stdout
    [bundle] = (tmp_path / "out").glob("r-line-1-*.msbundle")
    result = run("check", "--load", str(bundle), cache=tmp_path / "cache")
    assert result.returncode == 0, result
    assert "ok    golden: 8 of 8 golden examples within tolerance 1e-06" in result.stdout
    assert "ok    environment: the running environment matches the recorded one" in result.stdout
    assert f"ok    digest: bundle {bundle.name} intact" in result.stdout
