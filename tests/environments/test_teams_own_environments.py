"""A team's model in the environment it was trained in: an ordinary, current venv.

One training venv is built with uv from PyPI: a current scikit-learn, protobuf 7 (newer than the
protobuf meshserve itself runs with), and `inflection`, a small library meshserve's environment
does not have, which the model's own predict function uses. The package recorded from it with
`--from-venv` must build and serve in its own environment (with the team's protobuf 7), its
baseline must be scored there, and a `meshserve package` run that fails must leave model.yaml
byte for byte as it was.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEAM_REQUIREMENTS = ["scikit-learn>=1.5", "protobuf>=7", "inflection==0.5.1"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

MANIFEST = """\
# The team's own model: a scikit-learn tree, with species names written by inflection.
name: team-iris
version: "3"
runtime: python
entrypoint: species:predict
signature:
  inputs:
    - name: measurements
      datatype: FP64
      shape: [-1, 4]
      features: [sepal_length, sepal_width, petal_length, petal_width]
  outputs:
    - {name: label, datatype: INT64, shape: [-1]}
    - {name: species, datatype: BYTES, shape: [-1]}
"""

MODEL = '''\
from pathlib import Path

import inflection
import joblib
import numpy as np

TREE = joblib.load(Path(__file__).with_name("tree.joblib"))
NAMES = ["iris_setosa", "iris_versicolor", "iris_virginica"]


def predict(inputs):
    label = TREE.predict(inputs["measurements"]).astype(np.int64)
    return {"label": label, "species": np.array([inflection.titleize(NAMES[i]).encode() for i in label], dtype=object)}
'''

# Run by the training venv's Python: fit the tree, write the training data, and score it directly.
TRAIN = '''\
import csv, json, sys
from pathlib import Path
import joblib
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier
package, data = Path(sys.argv[1]), Path(sys.argv[2])
iris = load_iris()
joblib.dump(DecisionTreeClassifier(max_depth=3, random_state=0).fit(iris.data, iris.target), package / "tree.joblib")
with open(data, "w", newline="") as out:
    writer = csv.writer(out)
    writer.writerow(json.loads(sys.argv[3]))
    writer.writerows(iris.data.tolist())
sys.path.insert(0, str(package))
import numpy as np, species
answer = species.predict({"measurements": iris.data})
print(json.dumps({"label": answer["label"].tolist(), "species": [s.decode() for s in answer["species"]]}))
'''


def uv() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def meshserve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meshserve.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env}, timeout=600)


def pypi_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """The team's training venv, the package trained in it (not yet recorded), its training data
    and the model's own answers to it, and a cache of environments shared by the tests."""
    root = tmp_path_factory.mktemp("team")
    venv = root / "train-venv"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    made = subprocess.run([uv(), "venv", "-q", "-p", python_version, str(venv)], capture_output=True, text=True, env=env)
    installed = made.returncode == 0 and subprocess.run(
        [uv(), "pip", "install", "-q", "-p", str(venv / "bin" / "python"), *TEAM_REQUIREMENTS],
        capture_output=True, text=True, env=env, timeout=600)
    if not installed or installed.returncode != 0:
        if not pypi_reachable():
            pytest.skip("PyPI cannot be reached: the training and serving environments are built from it")
        raise AssertionError(f"building the training venv failed: {made.stderr}{installed.stderr if installed else ''}")
    package = root / "team_iris"
    package.mkdir()
    (package / "model.yaml").write_text(MANIFEST)
    (package / "species.py").write_text(MODEL)
    data = root / "train.csv"
    trained = subprocess.run([str(venv / "bin" / "python"), "-c", TRAIN, str(package), str(data), json.dumps(FEATURES)],
                             capture_output=True, text=True, check=True)
    return {"root": root, "venv": venv, "package": package, "data": data, "expected": json.loads(trained.stdout),
            "env": {"MESHSERVE_ENVS_DIR": str(tmp_path_factory.mktemp("envs"))}}


def packaged_copy(team, target: Path) -> Path:
    shutil.copytree(team["package"], target, ignore=shutil.ignore_patterns("__pycache__"))
    result = meshserve("package", str(target), "--from-venv", str(team["venv"]), env=team["env"])
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def built_environment(team) -> Path:
    built = [p for p in Path(team["env"]["MESHSERVE_ENVS_DIR"]).iterdir() if not p.name.startswith(".")]
    assert len(built) == 1, built
    return built[0]


def test_a_current_venv_with_protobuf_7_is_packaged_and_serves_in_its_own_environment(team, tmp_path):
    package = packaged_copy(team, tmp_path / "team_iris")
    recorded = yaml.safe_load((package / "model.yaml").read_text())["environment"]["python"]
    protobuf = next(r for r in recorded["requirements"] if r.lower().startswith("protobuf=="))
    assert protobuf.split("==")[1].startswith("7."), recorded["requirements"]

    checked = meshserve("check", str(package), env=team["env"])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok  team-iris:3 (python)" in checked.stdout
    # The team's versions won: the adapter runs on the protobuf and scikit-learn the model was trained with.
    there = subprocess.run([str(built_environment(team) / "bin" / "python"), "-c",
                            "import google.protobuf, sklearn; print(google.protobuf.__version__, sklearn.__version__)"],
                           capture_output=True, text=True, check=True).stdout.split()
    pins = dict(r.split("==") for r in recorded["requirements"])
    assert there == [pins["protobuf"], pins["scikit-learn"]]


def test_the_baseline_is_scored_in_the_packages_own_environment(team, tmp_path):
    """The model imports inflection, which only its own environment holds."""
    package = packaged_copy(team, tmp_path / "team_iris")
    result = meshserve("baseline", str(package), "--data", str(team["data"]), env=team["env"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "150 rows, 4 input and 2 output columns" in result.stdout
    baseline = json.loads((package / "baseline.json").read_text())
    features = {f["column"]: f for f in baseline["features"]}
    expected = team["expected"]["species"]
    shares = features["species"]["categories"]
    assert {name: round(share * len(expected)) for name, share in shares.items()} == \
        {name: expected.count(name) for name in set(expected)}
    assert set(shares) == {"Iris Setosa", "Iris Versicolor", "Iris Virginica"}


def test_a_pin_clashing_with_the_adapter_is_refused_in_one_line_and_model_yaml_is_untouched(team, tmp_path):
    package = packaged_copy(team, tmp_path / "team_iris")
    before = (package / "model.yaml").read_bytes()
    freeze = yaml.safe_load(before)["environment"]["python"]["requirements"]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(r for r in freeze if not r.lower().startswith("protobuf==")) +
                            "\nprotobuf==5.29.5\n")
    result = meshserve("package", str(package), "--requirements", str(requirements), env=team["env"])
    assert result.returncode == 2, result.stdout + result.stderr
    said = result.stderr.strip().splitlines()
    assert len(said) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "protobuf: the model pins protobuf==5.29.5" in said[0]
    assert "meshserve's adapter needs protobuf>=" in said[0] and "Fix: install protobuf>=" in said[0]
    assert str(package) in said[0] and "meshserve-package-" not in said[0]
    assert (package / "model.yaml").read_bytes() == before


def test_a_package_run_failing_after_the_environment_is_captured_leaves_model_yaml_as_it_was(team, tmp_path):
    package = tmp_path / "team_iris"
    shutil.copytree(team["package"], package, ignore=shutil.ignore_patterns("__pycache__"))
    before = (package / "model.yaml").read_bytes()
    result = meshserve("package", str(package), "--from-venv", str(team["venv"]),
                       "--training-data", str(tmp_path / "no-such.csv"), env=team["env"])
    assert result.returncode != 0 and "no-such.csv" in result.stderr, result.stdout + result.stderr
    assert (package / "model.yaml").read_bytes() == before
    assert sorted(p.name for p in package.iterdir()) == ["model.yaml", "species.py", "tree.joblib"]
