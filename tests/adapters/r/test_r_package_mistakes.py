"""A mistake in an R model package is one line naming the file, the field and the fix, said by
`meshserve check` before anything serves and by the adapter at start, never a Python traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from r_oracle import rscript, rscript_available

from meshserve.cli import main

pytestmark = pytest.mark.skipif(not rscript_available(), reason="R is missing: run scripts/setup.sh")

MANIFEST = {
    "name": "breaks", "version": "1", "runtime": "r",
    "signature": {
        "inputs": [{"name": "wool", "datatype": "BYTES", "shape": [-1]},
                   {"name": "tension", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": "breaks", "datatype": "FP64", "shape": [-1]}],
    },
    "r": {"columns": [{"name": "wool", "type": "factor", "levels": ["A", "B"]},
                      {"name": "tension", "type": "factor", "levels": ["L", "M", "H"]}]},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("r-trained")
    rscript(f"setwd({str(folder)!r}); suppressPackageStartupMessages(library(randomForest)); set.seed(1); "
            "saveRDS(glm(breaks ~ wool + tension, family = poisson(), data = warpbreaks), 'glm.rds'); "
            "saveRDS(randomForest(breaks ~ wool + tension, data = warpbreaks, ntree = 20), 'forest.rds')")
    return folder


def package(tmp_path: Path, models: Path, r: dict | None = None, model: str = "glm.rds",
            files: dict[str, str] | None = None, top: dict | None = None) -> Path:
    folder = tmp_path / "breaks"
    folder.mkdir()
    shutil.copy(models / model, folder / "model.rds")
    manifest = {**MANIFEST, **(top or {}), "r": {**MANIFEST["r"], **(r or {})}}
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    return folder


def check_says(folder: Path, capsys) -> str:
    capsys.readouterr()
    assert main(["check", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"meshserve: {folder / 'model.yaml'}: field '")
    return err


CASES = {
    "a predict function R does not have": (
        {"predict_function": "predict_breaks"}, {}, "r.predict_function",
        ("R has no function named 'predict_breaks'. Fix: add the package that defines it to r.packages, or define "
         "it in an R file named by r.predict_file")),
    "a predict file without the named function": (
        {"predict_file": "score.R", "predict_function": "predict_breaks"},
        {"score.R": "score <- function(model, newdata) predict(model, newdata)\n"}, "r.predict_function",
        "score.R defines no function named 'predict_breaks' (it defines score)"),
    "a predict file R cannot parse": (
        {"predict_file": "score.R", "predict_function": "score"}, {"score.R": "score <- function(model, newdata {\n"},
        "r.predict_file", "R cannot source score.R"),
    "an argument the predict method would silently ignore": (
        {"predict_args": {"kind": "response"}}, {}, "r.predict_args",
        ("predict.glm, the model's predict method, takes no argument named kind; R would ignore it. "
         "Fix: use the function's own argument names (type, se.fit")),
    "an argument the team's function cannot take": (
        {"predict_file": "score.R", "predict_function": "score", "predict_args": {"type": "response"}},
        {"score.R": "score <- function(model, newdata) predict(model, newdata)\n"}, "r.predict_args",
        "score takes no argument named type; R would refuse every request"),
    "a predict function with one argument": (
        {"predict_file": "score.R", "predict_function": "score"},
        {"score.R": "score <- function(newdata) 1\n"}, "r.predict_function",
        "score takes (newdata), but meshserve calls it as score(model, newdata)"),
    "levels in another order than the model's": (
        {"columns": [MANIFEST["r"]["columns"][0], {"name": "tension", "type": "factor", "levels": ["H", "M", "L"]}]},
        {}, "r.columns[1].levels", "Fix: copy the stored levels in that order: levels: [L, M, H]"),
    "a misspelled column type": (
        {"columns": [MANIFEST["r"]["columns"][0], {"name": "tension", "type": "ordred", "levels": ["L", "M", "H"]}]},
        {}, "r.columns[1].type", "Input should be 'numeric', 'integer', 'factor', 'ordered'"),
    "a misspelled field": ({"colums": []}, {}, "r.colums", "Extra inputs are not permitted"),
    "an ordered column without levels": (
        {"columns": [MANIFEST["r"]["columns"][0], {"name": "tension", "type": "ordered"}]}, {}, "r.columns[1]",
        "ordered column 'tension' needs its levels"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_meshserve_check_names_the_file_the_field_and_the_fix(models, tmp_path, capsys, case):
    r, files, field, said = CASES[case]
    err = check_says(package(tmp_path, models, r, files=files), capsys)
    assert f"field '{field}'" in err
    assert said in err


def test_a_missing_rds_is_reported_before_r_starts(models, tmp_path, capsys):
    folder = package(tmp_path, models)
    (folder / "model.rds").unlink()
    err = check_says(folder, capsys)
    assert "field 'r.model': model.rds is not in the package. Fix: save the model into the package folder" in err


def test_a_file_that_is_no_rds_is_reported_with_how_to_save_one(models, tmp_path, capsys):
    folder = package(tmp_path, models)
    (folder / "model.rds").write_text("not a model\n")
    err = check_says(folder, capsys)
    assert "field 'r.model': R cannot read model.rds: unknown input format" in err
    assert 'saveRDS(model, "model.rds")' in err


def test_a_model_whose_predict_method_no_attached_package_provides_names_the_package(models, tmp_path, capsys):
    err = check_says(package(tmp_path, models, model="forest.rds"), capsys)
    assert "field 'r.packages': R has no predict method for the model's class (randomForest.formula, randomForest)" in err
    assert "packages: [randomForest]" in err


def test_nan_for_r_that_input_policy_would_refuse_first_is_a_contradiction(models, tmp_path, capsys):
    folder = package(tmp_path, models, top={"signature": {
        "inputs": MANIFEST["signature"]["inputs"] + [{"name": "extra", "datatype": "FP64", "shape": [-1]}],
        "outputs": MANIFEST["signature"]["outputs"]}},
        r={"columns": MANIFEST["r"]["columns"] + [{"name": "extra", "type": "numeric", "nan": "na"}]})
    err = check_says(folder, capsys)
    assert "field 'r.columns[2].nan'" in err and "input_policy: {nan: allow}" in err


def fake_apt_cache(tmp_path: Path, candidate: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-cache").write_text(f"#!/bin/sh\necho \"$2:\"\necho '  Installed: (none)'\n"
                                       f"echo '  Candidate: {candidate}'\n")
    (bin_dir / "apt-cache").chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_a_missing_r_package_that_debian_has_is_installed_with_apt(models, tmp_path, capsys, monkeypatch):
    for name, value in fake_apt_cache(tmp_path, "4.1-6-1").items():
        monkeypatch.setenv(name, value)
    err = check_says(package(tmp_path, models, {"packages": ["nosuchpkg.extra"]}), capsys)
    assert "R cannot load package 'nosuchpkg.extra': there is no package called" in err
    assert ("Fix: install Debian's package: `apt-get install -y --no-install-recommends r-cran-nosuchpkg.extra` "
            "(version 4.1-6-1") in err
    assert "<" not in err


def test_a_missing_r_package_that_debian_lacks_is_installed_from_source_into_a_user_library(
        models, tmp_path, capsys, monkeypatch):
    for name, value in fake_apt_cache(tmp_path, "(none)").items():
        monkeypatch.setenv(name, value)
    err = check_says(package(tmp_path, models, {"packages": ["NoSuchPkg"]}), capsys)
    assert "Fix: Debian has no r-cran-nosuchpkg; install it from source into a user library: `mkdir -p ~/R/library " \
           "&& R_LIBS_USER=~/R/library Rscript -e 'install.packages(\"NoSuchPkg\"" in err
    assert "export R_LIBS_USER=~/R/library" in err and "<" not in err


def meshserve(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meshserve.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, check=False)


def test_check_and_the_adapter_print_one_line_and_no_traceback(models, tmp_path):
    folder = package(tmp_path, models, model="forest.rds")
    for argv in (["check", str(folder)], ["adapter", str(folder), "--listen", "127.0.0.1:0"]):
        done = meshserve(*argv)
        assert done.returncode == 2, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert "field 'r.packages'" in lines[0] and "packages: [randomForest]" in lines[0]


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="not a Debian system: apt-cache is missing")
def test_this_machines_apt_is_asked_whether_debian_has_the_package(models, tmp_path, capsys):
    err = check_says(package(tmp_path, models, {"packages": ["noSuchPackageAnywhere"]}), capsys)
    assert "Fix: Debian has no r-cran-nosuchpackageanywhere; install it from source into a user library" in err
