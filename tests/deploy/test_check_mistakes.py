"""`meshserve check DIR` loads every model and scores it, so a package that would fail on every
request is refused before it serves, in one line naming the file, the field and the fix.

Each broken package is a bundled example copied into the test's folder with one field broken,
the way a team's own package goes wrong. The packages of one language share one `check` run
(one fresh adapter each), and each test reads its own package's line from that run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES, meshserve_argv
from java_oracle import NOT_BUILT, java_examples_built
from r_oracle import rscript_available

R_MISSING = "R (Rscript) is not installed here (scripts/setup.sh installs it)"


def check(*args: str, cache: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(meshserve_argv("check", *args), capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MESHSERVE_BUNDLE_CACHE": str(cache), **(env or {})})


def broken_copy(example: str, into: Path, version: str, *edits: tuple[str, str], file: str = "model.yaml") -> Path:
    """EXAMPLE copied to INTO/<example>-<version>, its version set, then each (old, new) replaced once in FILE."""
    package = Path(shutil.copytree(EXAMPLES / example, into / f"{example}-{version}",
                                   ignore=shutil.ignore_patterns("__pycache__", ".meshserve")))
    manifest = package / "model.yaml"
    manifest.write_text(re.sub(r'(?m)^version: .*$', f'version: "{version}"', manifest.read_text(), count=1))
    target = package / file
    text = target.read_text()
    for old, new in edits:
        assert old in text, f"{old!r} is not in {target}"
        text = text.replace(old, new, 1)
    target.write_text(text)
    return package


def line_for(result: subprocess.CompletedProcess, package: Path, field: str) -> str:
    """The one FAIL line naming PACKAGE's model.yaml and FIELD; fails showing the whole output."""
    wanted = f"{package / 'model.yaml'}: field '{field}': "
    lines = [line for line in result.stdout.splitlines() if "FAIL" in line and wanted in line]
    assert lines, f"no FAIL line with {wanted!r}:\n{result.stdout}\n{result.stderr}"
    assert ". Fix: " in lines[0], lines[0]
    return lines[0]


# -- every bundled example passes; --manifest-only loads nothing --------------------------------

def test_check_loads_and_scores_every_bundled_example(tmp_path):
    from meshserve.adapters.triton.triton_env import not_installed_message, triton_environment

    for missing, reason in ((not rscript_available(), R_MISSING), (not java_examples_built(), NOT_BUILT),
                            (triton_environment() is None, "Triton: " + not_installed_message())):
        if missing:
            pytest.skip(reason)
    result = check(str(EXAMPLES), cache=tmp_path / "cache")
    assert result.returncode == 0, result.stdout + result.stderr
    for model in ("breast-cancer:1 (python)", "breast-cancer:2 (python)", "iris-species:1 (python)",
                  "loan_default:1 (java)", "iris_j48:1 (java)", "infert-glm:1 (r)", "iris-randomforest:1 (r)",
                  "digits-triton:1 (triton)"):
        assert f"ok  {model}" in result.stdout, result.stdout
    assert result.stdout.count("ok    golden: ") == 8 and "FAIL" not in result.stdout


def test_manifest_only_reads_the_manifests_and_starts_no_adapter(tmp_path):
    package = broken_copy("breast_cancer", tmp_path, "1",
                          ("probabilities: predict_proba", "probabilities: predict_probas"))
    started = time.monotonic()
    # An adapter started anyway could not load within a millisecond: the package would FAIL.
    result = check("--manifest-only", str(package), cache=tmp_path / "cache",
                   env={"MESHSERVE_GATE_LOAD_TIMEOUT_S": "0.001"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok  breast-cancer:1 (python)" in result.stdout and "loads:" not in result.stdout
    assert "--manifest-only: the models were not loaded" in result.stdout
    assert time.monotonic() - started < 30


# -- Python -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def python_mistakes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("python-mistakes")
    packages = {
        "method": broken_copy("breast_cancer", folder, "1",
                              ("probabilities: predict_proba", "probabilities: predict_probas")),
        "dependency": broken_copy("iris_species", folder, "1", ("import numpy as np\n",
                                  "import numpy as np\nimport meshserve_missing_dependency\n"), file="species.py"),
    }
    # `--load`, the old way to ask for loading, is still accepted: loading is what check does anyway.
    return packages, check("--load", str(folder), cache=folder / "cache")


def test_a_misspelt_estimator_method_lists_the_methods_it_has(python_mistakes):
    packages, result = python_mistakes
    assert result.returncode != 0
    line = line_for(result, packages["method"], "python.methods.probabilities")
    assert "GradientBoostingClassifier has no method predict_probas" in line
    assert "predict_proba" in line.split(". Fix: ")[1] and "predict_log_proba" in line
    assert "Traceback" not in result.stdout + result.stderr


def test_a_dependency_the_model_imports_but_nothing_pins_is_named(python_mistakes):
    packages, result = python_mistakes
    line = line_for(result, packages["dependency"], "environment.python.requirements")
    assert "meshserve_missing_dependency" in line and "species" in line
    assert "==VERSION" in line.split(". Fix: ")[1]


def test_debug_shows_the_adapters_traceback(tmp_path):
    package = broken_copy("iris_species", tmp_path, "1", ("import numpy as np\n",
                          "import numpy as np\nimport meshserve_missing_dependency\n"), file="species.py")
    result = subprocess.run(meshserve_argv("--debug", "check", str(package)), capture_output=True, text=True,
                            timeout=300, env={**os.environ, "MESHSERVE_BUNDLE_CACHE": str(tmp_path / "cache")})
    assert result.returncode != 0
    assert "Traceback" in result.stdout and "ModuleNotFoundError" in result.stdout


# -- Java ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def java_mistakes(tmp_path_factory):
    if not java_examples_built():
        pytest.skip(NOT_BUILT)
    folder = tmp_path_factory.mktemp("java-mistakes")
    loan_jar = EXAMPLES / "java_loan_default" / "build" / "loan-default.jar"
    packages = {
        "class": broken_copy("java_loan_default", folder, "1", ("LoanDefaultModel", "LoanDefaultModle")),
        "method": broken_copy("java_weka_j48", folder, "1",
                              ("method: distributionForInstance", "method: distributionForInstanc")),
        "jar": broken_copy("java_weka_j48", folder, "2", ("/usr/share/java/weka.jar", str(loan_jar))),
    }
    return packages, check(str(folder), cache=folder / "cache")


def test_a_misspelt_java_class_is_named_with_the_classes_close_to_it(java_mistakes):
    packages, result = java_mistakes
    assert result.returncode != 0
    line = line_for(result, packages["class"], "java.class")
    assert "com.example.credit.LoanDefaultModle" in line
    assert "com.example.credit.LoanDefaultModel" in line.split(". Fix: ")[1]
    assert "Traceback" not in result.stdout + result.stderr


def test_a_misspelt_java_method_is_named_with_the_methods_close_to_it(java_mistakes):
    packages, result = java_mistakes
    line = line_for(result, packages["method"], "java.legacy.calls.probabilities.method")
    assert "distributionForInstanc'" in line and "distributionForInstance" in line.split(". Fix: ")[1]


def test_a_jar_swapped_for_another_names_the_classpath_and_the_missing_class(java_mistakes):
    packages, result = java_mistakes
    line = line_for(result, packages["jar"], "java.classpath")
    assert "weka.core.SerializationHelper" in line and "loan-default.jar" in line


# -- R ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def r_mistakes(tmp_path_factory):
    if not rscript_available() or not (EXAMPLES / "r_iris_randomforest" / "model.rds").exists():
        pytest.skip(R_MISSING)
    folder = tmp_path_factory.mktemp("r-mistakes")
    packages = {
        "package": broken_copy("r_iris_randomforest", folder, "1", ("packages: [randomForest]", "packages: []")),
        "feature": broken_copy("r_iris_randomforest", folder, "2", ("[Sepal.Length,", "[Sepal.Lenght,")),
    }
    return packages, check(str(folder), cache=folder / "cache")


def test_an_r_package_left_out_of_r_packages_is_named_from_the_models_class(r_mistakes):
    packages, result = r_mistakes
    assert result.returncode != 0
    line = line_for(result, packages["package"], "r.packages")
    assert "randomForest" in line and "packages: [randomForest]" in line.split(". Fix: ")[1]
    assert "Traceback" not in result.stdout + result.stderr


def test_a_misspelt_feature_read_by_a_predict_file_names_the_models_variable(r_mistakes):
    packages, result = r_mistakes
    line = line_for(result, packages["feature"], "signature.inputs[0].features")
    assert "'Sepal.Length'" in line and "Sepal.Lenght" in line
    assert "must match the model's variables" in line
