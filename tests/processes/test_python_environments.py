"""Each Python model in the environment it was trained in.

Two versions of one scikit-learn model are trained at set-up in two training venvs built with uv
from PyPI: version 1 under numpy 1 and scikit-learn 1.3, version 2 under numpy 2 and scikit-learn
1.9, each keeping a numpy RandomState. They are packaged from their training environments
(`--requirements` from a freeze, `--from-venv`), served side by side by `meshserve up`, and must
answer exactly what scoring them directly in their training venvs gives. A second start finds the
environments in the cache and must not rebuild them or touch the network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
import tritonclient.grpc as triton
from conftest import ROOT, meshserve_argv, start_mesh

pytestmark = pytest.mark.slow

TRAIN = ROOT / "tests" / "environments" / "train_iris.py"
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8]])
TRAINING = {
    "1": ["numpy==1.26.4", "scikit-learn==1.3.2", "scipy==1.11.4", "joblib==1.3.2", "threadpoolctl==3.2.0"],
    "2": ["numpy==2.4.6", "scikit-learn==1.9.1", "scipy==1.17.1", "joblib==1.6.0", "threadpoolctl==3.8.0"],
}
SPEC = "models:\n  iris-env:\n    variants:\n      - {version: \"1\", weight: 50}\n      - {version: \"2\", weight: 50}\n"


def uv() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def pypi_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
        return True
    except OSError:
        return False


def build_training_venv(folder: Path, requirements: list[str]) -> Path:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    created = subprocess.run([uv(), "venv", "-q", "-p", f"{sys.version_info.major}.{sys.version_info.minor}",
                              str(folder)], capture_output=True, text=True, env=env)
    installed = created.returncode == 0 and subprocess.run(
        [uv(), "pip", "install", "-q", "-p", str(folder / "bin" / "python"), *requirements],
        capture_output=True, text=True, env=env)
    if not installed or installed.returncode != 0:
        if not pypi_reachable():
            pytest.skip("PyPI cannot be reached: the training and serving environments are built from it")
        raise AssertionError(f"building the training venv failed:\n{created.stderr}"
                             f"{installed.stderr if installed else ''}")
    return folder


def meshserve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(meshserve_argv(*args), capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Training venvs, the packages trained and captured in them, and their direct answers."""
    root = tmp_path_factory.mktemp("python-environments")
    venvs = {version: build_training_venv(root / f"train-{version}", requirements)
             for version, requirements in TRAINING.items()}
    models = root / "models"
    expected = {}
    for version, venv in venvs.items():
        package = models / f"iris_v{version}"
        python = str(venv / "bin" / "python")
        subprocess.run([python, str(TRAIN), "train", str(package), version], check=True)
        expected[version] = json.loads(subprocess.run([python, str(TRAIN), "score", str(package)], check=True,
                                                      capture_output=True, text=True).stdout)
    (models / "meshserve.yaml").write_text(SPEC)
    # Version 1 from a requirements file (a freeze of its venv), version 2 from the venv itself.
    freeze = subprocess.run([uv(), "pip", "freeze", "-p", str(venvs["1"] / "bin" / "python")],
                            capture_output=True, text=True, check=True).stdout
    (root / "requirements-1.txt").write_text(freeze)
    packaged = [meshserve("package", str(models / "iris_v1"), "--requirements", str(root / "requirements-1.txt")),
                meshserve("package", str(models / "iris_v2"), "--from-venv", str(venvs["2"]))]
    for result in packaged:
        assert result.returncode == 0, result.stderr
    return {"root": root, "models": models, "venvs": venvs, "expected": expected, "freeze": freeze,
            "envs": tmp_path_factory.mktemp("meshserve-envs")}


def infer(client, version: str):
    inputs = [triton.InferInput("features", list(ROWS.shape), "FP64")]
    inputs[0].set_data_from_numpy(ROWS)
    result = client.infer("iris-env", inputs, model_version=version)
    return result


def test_packaging_records_the_training_environment(trained):
    import yaml

    recorded = {v: yaml.safe_load((trained["models"] / f"iris_v{v}" / "model.yaml").read_text())["environment"]
                for v in ("1", "2")}
    assert recorded["1"]["python"]["version"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    for version, pins in TRAINING.items():
        for pin in pins:
            assert pin in recorded[version]["python"]["requirements"]
    assert "pip" not in " ".join(recorded["2"]["python"]["requirements"]).split("==")[0]


def test_two_versions_with_different_numpy_serve_side_by_side_then_start_again_offline(trained):
    env = {"MESHSERVE_ENVS_DIR": str(trained["envs"])}
    first = start_mesh(trained["models"], env=env, timeout=600)
    try:
        client = triton.InferenceServerClient(first.address)
        for version in ("1", "2"):
            answer = infer(client, version)
            assert answer.get_response().model_version == version
            expected = trained["expected"][version]
            assert answer.as_numpy("label").tolist() == expected["label"]
            assert answer.as_numpy("probabilities").tolist() == expected["probabilities"]
        client.close()
    finally:
        first.stop()
    assert first.output.count("meshserve: building the Python environment of iris-env:") == 2, first.output
    assert trained["expected"]["1"]["numpy"].startswith("1.") and trained["expected"]["2"]["numpy"].startswith("2.")
    built = sorted(p for p in trained["envs"].iterdir() if not p.name.startswith("."))
    assert len(built) == 2, built
    stamps = {p.name: (p.stat().st_ino, (p / "meshserve-environment.json").stat().st_mtime_ns) for p in built}

    # `meshserve check` loads each model where it is served, not in meshserve's environment.
    checked = meshserve("check", str(trained["models"]), env=env)
    assert checked.returncode == 0, checked.stderr
    assert "ok  iris-env:1 (python)" in checked.stdout and "ok  iris-env:2 (python)" in checked.stdout

    # No network now: uv offline and an index that does not exist; the cached environments must do.
    offline = {**env, "UV_OFFLINE": "1", "UV_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_INDEX_URL": "http://127.0.0.1:9/simple"}
    second = start_mesh(trained["models"], env=offline, timeout=180)
    try:
        client = triton.InferenceServerClient(second.address)
        for version in ("1", "2"):
            assert infer(client, version).as_numpy("label").tolist() == trained["expected"][version]["label"]
        client.close()
    finally:
        second.stop()
    assert "building the Python environment" not in second.output, second.output
    assert second.output.count("runs in its own Python environment") == 2, second.output
    assert {p.name: (p.stat().st_ino, (p / "meshserve-environment.json").stat().st_mtime_ns)
            for p in built} == stamps


SCORE_GOLDEN = """
import json, sys, joblib, numpy as np
model = joblib.load(sys.argv[1] + "/model.joblib")
golden = json.load(open(sys.argv[1] + "/golden.json"))
rows = np.array([e["inputs"]["features"]["data"] for e in golden["examples"]], dtype=np.float64).reshape(-1, 4)
print(json.dumps({"label": model.predict(rows).tolist(), "probabilities": model.predict_proba(rows).tolist()}))
"""


def test_golden_examples_of_an_own_environment_package_are_scored_in_that_environment(trained, tmp_path):
    """Recorded by `meshserve package` in the model's environment (numpy 1, scikit-learn 1.3), not
    meshserve's, so they equal the training venv's answers and `check --load` passes on them."""
    package = tmp_path / "iris_v1"
    shutil.copytree(trained["models"] / "iris_v1", package)
    env = {"MESHSERVE_ENVS_DIR": str(trained["envs"])}
    packaged = meshserve("package", str(package), "--requirements", str(trained["root"] / "requirements-1.txt"),
                         "--golden-rows", "3", env=env)
    assert packaged.returncode == 0, packaged.stderr
    golden = json.loads((package / "golden.json").read_text())
    direct = json.loads(subprocess.run([str(trained["venvs"]["1"] / "bin" / "python"), "-c", SCORE_GOLDEN,
                                        str(package)], check=True, capture_output=True, text=True).stdout)
    examples = golden["examples"]
    assert [v for e in examples for v in np.ravel(e["outputs"]["label"]["data"])] == direct["label"]
    assert np.allclose([np.ravel(e["outputs"]["probabilities"]["data"]) for e in examples], direct["probabilities"])
    checked = meshserve("check", "--load", str(package), env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_an_unpinned_requirement_is_refused_naming_the_line(trained, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==1.26.4\nscikit-learn>=1.3\n# a comment\njoblib\n")
    package = tmp_path / "iris"
    shutil.copytree(trained["models"] / "iris_v1", package)
    before = (package / "model.yaml").read_text()
    result = meshserve("package", str(package), "--requirements", str(requirements))
    assert result.returncode == 2
    assert "line 2 'scikit-learn>=1.3' is not pinned: write scikit-learn==VERSION" in result.stderr
    assert "line 4 'joblib' is not pinned" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (package / "model.yaml").read_text() == before


def test_a_numpy_2_model_in_a_numpy_1_environment_says_so_in_one_line(trained, tmp_path):
    models = tmp_path / "models"
    package = models / "iris_v2"
    shutil.copytree(trained["models"] / "iris_v2", package)
    # Packaged with version 1's requirements: numpy 1.26 (the same environment as version 1's).
    assert meshserve("package", str(package), "--requirements", str(trained["root"] / "requirements-1.txt")).returncode == 0
    result = meshserve("up", str(models), "--listen", "127.0.0.1:0", "--no-envoy", "--strict",
                       env={"MESHSERVE_ENVS_DIR": str(trained["envs"])})
    assert result.returncode != 0
    said = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if "cannot be loaded" in line]
    assert len(said) == 1, result.stdout + result.stderr
    assert "it needs numpy >= 2 (it was saved with numpy 2), and this environment has numpy 1.26.4" in said[0]
    assert "Traceback" not in result.stdout + result.stderr
    debugged = meshserve("--debug", "up", str(models), "--listen", "127.0.0.1:0", "--no-envoy", "--strict",
                         env={"MESHSERVE_ENVS_DIR": str(trained["envs"])})
    assert "Traceback" in debugged.stdout and "is not a known BitGenerator" in debugged.stdout


def test_a_conflict_with_the_adapter_names_both_sides_and_leaves_no_half_made_environment(trained, tmp_path):
    models = tmp_path / "models"
    package = models / "iris_v1"
    shutil.copytree(trained["models"] / "iris_v1", package)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(trained["freeze"] + "protobuf==3.20.3\n")
    before = (package / "model.yaml").read_bytes()
    # Refused when packaged, in one line naming both pins, and model.yaml left as it was.
    packaged = meshserve("package", str(package), "--requirements", str(requirements))
    assert packaged.returncode == 2, packaged.stdout + packaged.stderr
    assert "protobuf==3.20.3" in packaged.stderr and "protobuf>=6.31,<8" in packaged.stderr
    assert (package / "model.yaml").read_bytes() == before
    # A package recorded elsewhere with the same pins is refused by `up` the same way, building nothing.
    manifest = yaml.safe_load(before)
    manifest["environment"]["python"]["requirements"].append("protobuf==3.20.3")
    (package / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    envs = tmp_path / "envs"
    result = meshserve("up", str(models), "--listen", "127.0.0.1:0", "--no-envoy",
                       env={"MESHSERVE_ENVS_DIR": str(envs)})
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(line for line in result.stderr.splitlines() if "cannot build the Python environment" in line)
    assert "the model pins protobuf==3.20.3" in line and "meshserve's adapter needs protobuf>=6.31,<8" in line
    assert [p.name for p in envs.iterdir() if not p.name.endswith(".lock")] == []
