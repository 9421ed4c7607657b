"""Models kept in the MLflow Model Registry, imported with `meshserve import` and served by `meshserve up`.

A real `mlflow server` (SQLite backend, a local artifact store) is started once for the module from
the MLflow environment `.venv-mlflow` (scripts/setup.d/65-mlflow.sh), and the models are trained and
registered there with signatures, as a team using MLflow would. What meshserve answers must equal what
MLflow itself answers for the same version; an import pins the version an alias points at, so moving
the alias changes nothing until the next import.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as triton
import yaml
from conftest import EXAMPLES, ROOT, free_port, meshserve_argv, start_mesh

# The MLflow server, its set-up process and two environment builds take minutes on a busy 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MLFLOW_PYTHON = ROOT / ".venv-mlflow" / "bin" / "python"
MODELS_SCRIPT = ROOT / "tests" / "importing" / "mlflow_models.py"
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8],
                 [6.0, 2.2, 5.0, 1.5]])


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A running MLflow tracking server with iris (versions 1 and 2, @champion on 1), a pyfunc and an unsigned model."""
    if not MLFLOW_PYTHON.exists():
        pytest.skip(f"no MLflow environment at {MLFLOW_PYTHON.parent.parent}: run scripts/setup.sh (65-mlflow.sh)")
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"http://127.0.0.1:{free_port()}"
    server = subprocess.Popen(
        [str(MLFLOW_PYTHON.parent / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", uri.rsplit(":", 1)[1],
         "--workers", "1"], stdout=open(root / "server.log", "w"), stderr=subprocess.STDOUT, cwd=root)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"mlflow server did not start:\n{(root / 'server.log').read_text()}")
                time.sleep(0.5)

        def mlflow_side(*args: str) -> dict:
            done = subprocess.run([str(MLFLOW_PYTHON), str(MODELS_SCRIPT), uri, *args], capture_output=True,
                                  text=True, cwd=root, timeout=300)
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout.strip().splitlines()[-1])

        made = mlflow_side("setup")
        runs, expected = made["runs"], made["expected"]
        assert expected["iris"]["1"] != expected["iris"]["2"], "the two versions must answer differently"
        yield {"uri": uri, "root": root, "runs": runs, "expected": expected,
               "envs": tmp_path_factory.mktemp("meshserve-envs")}
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


def move_alias(uri: str, name: str, alias: str, version: str) -> None:
    """What MlflowClient.set_registered_model_alias sends, through the registry's REST API."""
    body = json.dumps({"name": name, "alias": alias, "version": version}).encode()
    request = urllib.request.Request(f"{uri}/api/2.0/mlflow/registered-models/alias", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).close()


def meshserve_import(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(meshserve_argv("import", *args), capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, **(env or {})})


def infer(address: str, model: str) -> tuple[str, list]:
    client = triton.InferenceServerClient(address)
    try:
        features = triton.InferInput("features", list(ROWS.shape), "FP64")
        features.set_data_from_numpy(ROWS)
        answer = client.infer(model, [features])
        return answer.get_response().model_version, answer.as_numpy("predictions").tolist()
    finally:
        client.close()


def test_an_alias_is_pinned_at_import_and_served_until_the_next_import(registry, tmp_path):
    models = tmp_path / "models"
    imported = meshserve_import("models:/iris@champion", "-o", str(models / "iris"),
                                env={"MLFLOW_TRACKING_URI": registry["uri"]})
    assert imported.returncode == 0, imported.stderr
    assert "@champion -> version 1, pinned" in imported.stdout
    manifest = yaml.safe_load((models / "iris" / "model.yaml").read_text())
    assert manifest["name"] == "iris" and manifest["version"] == "1" and manifest["runtime"] == "python"
    assert manifest["entrypoint"].startswith("mlflow-model/model.")
    origin = manifest["provenance"]["mlflow"]
    assert origin["registered_model"] == "iris" and origin["version"] == "1" and origin["alias"] == "champion"
    assert origin["run_id"] == registry["runs"]["1"]["run_id"] and origin["source"].startswith("models:/")
    assert manifest["signature"]["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 4], "features": [
        "sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]}]
    assert manifest["signature"]["outputs"] == [{"name": "predictions", "datatype": "INT64", "shape": [-1]}]
    pins = manifest["environment"]["python"]["requirements"]
    assert any(p.startswith("scikit-learn==") for p in pins) and not any(p.startswith("mlflow==") for p in pins)

    pyfunc = meshserve_import("models:/sums/1", "--tracking-uri", registry["uri"], "-o", str(models / "sums"))
    assert pyfunc.returncode == 0, pyfunc.stderr
    assert any(p.startswith("mlflow==") for p in
               yaml.safe_load((models / "sums" / "model.yaml").read_text())["environment"]["python"]["requirements"])

    env = {"MESHSERVE_ENVS_DIR": str(registry["envs"])}
    mesh = start_mesh(models, env=env, timeout=900)
    try:
        assert infer(mesh.address, "iris") == ("1", registry["expected"]["iris"]["1"])
        version, sums = infer(mesh.address, "sums")
        assert version == "1" and np.allclose(sums, registry["expected"]["sums"], rtol=0, atol=1e-9)

        # The alias moves to version 2: the package and what is live stay on version 1.
        before = (models / "iris" / "model.yaml").read_bytes()
        move_alias(registry["uri"], "iris", "champion", "2")
        assert infer(mesh.address, "iris") == ("1", registry["expected"]["iris"]["1"])
        assert (models / "iris" / "model.yaml").read_bytes() == before
    finally:
        mesh.stop()

    # Both load in their own environments, now built: the pyfunc with mlflow.pyfunc.load_model there.
    checked = subprocess.run(meshserve_argv("check", str(models)), capture_output=True, text=True, cwd=ROOT,
                             timeout=300, env={**os.environ, **env})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok  sums:1 (python)  features FP64[-1, 4] -> predictions FP64[-1]" in checked.stdout

    again = meshserve_import("models:/iris@champion", "--tracking-uri", registry["uri"], "-o", str(models / "iris"))
    assert again.returncode == 0, again.stderr
    assert "@champion -> version 2, pinned" in again.stdout
    manifest = yaml.safe_load((models / "iris" / "model.yaml").read_text())
    assert manifest["version"] == "2" and manifest["provenance"]["mlflow"]["run_id"] == registry["runs"]["2"]["run_id"]
    assert manifest["provenance"]["mlflow"]["artifacts_sha256"] != origin["artifacts_sha256"]
    mesh = start_mesh(models / "iris", env=env, timeout=600)
    try:
        assert infer(mesh.address, "iris") == ("2", registry["expected"]["iris"]["2"])
    finally:
        mesh.stop()
    assert "runs in its own Python environment" in mesh.output and "(cached)" in mesh.output


def one_line_refusal(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("uri, said", [
    ("models:/iris@nightly", "iris has no alias 'nightly'; its aliases: @champion -> "),
    ("models:/iris/7", "iris has no version 7; its versions: 1, 2; its aliases: @champion -> "),
    ("models:/irsi/1", "no registered model 'irsi' at http://127.0.0.1:"),
    ("models:/iris/latest", "registry versions are numbers, and 'latest' is not one"),
    ("runs:/abc/model", "is not a registered model URI; write models:/NAME/VERSION"),
])
def test_a_wrong_model_uri_says_what_exists(registry, tmp_path, uri, said):
    line = one_line_refusal(meshserve_import(uri, "--tracking-uri", registry["uri"], "-o", str(tmp_path / "out")))
    assert said in line, line
    if "no registered model" in said:
        assert "it has: iris, sums, unsigned" in line
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_an_unreachable_server_names_the_uri_and_how_to_set_it(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    line = one_line_refusal(meshserve_import("models:/iris/1", "--tracking-uri", uri, "-o", str(tmp_path / "out")))
    assert f"cannot reach the MLflow tracking server at {uri}" in line
    assert "--tracking-uri URI or set MLFLOW_TRACKING_URI" in line
    line = one_line_refusal(meshserve_import("models:/iris/1", "-o", str(tmp_path / "out"),
                                             env={"MLFLOW_TRACKING_URI": ""}))
    assert "no MLflow tracking server named" in line


def test_a_model_without_a_signature_is_refused_unless_one_is_given(registry, tmp_path):
    line = one_line_refusal(meshserve_import("models:/unsigned/1", "--tracking-uri", registry["uri"],
                                             "-o", str(tmp_path / "out")))
    assert "was logged without a signature" in line and "infer_signature" in line and "--signature FILE" in line
    assert not list(tmp_path.iterdir())
    signature = tmp_path / "signature.yaml"
    signature.write_text("inputs:\n  - {name: features, datatype: FP64, shape: [-1, 4]}\n"
                         "outputs:\n  - {name: predictions, datatype: INT64, shape: [-1]}\n")
    given = meshserve_import("models:/unsigned/1", "--tracking-uri", registry["uri"], "--signature", str(signature),
                             "-o", str(tmp_path / "out"))
    assert given.returncode == 0, given.stderr
    checked = subprocess.run(meshserve_argv("check", str(tmp_path / "out")), capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
    assert checked.returncode == 0 and "ok  unsigned:1 (python)  features FP64[-1, 4]" in checked.stdout, \
        checked.stdout + checked.stderr


def test_an_import_never_overwrites_a_folder_it_did_not_write(registry, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    line = one_line_refusal(meshserve_import("models:/iris/1", "--tracking-uri", registry["uri"],
                                             "-o", str(tmp_path / "out")))
    assert "holds files that are not an earlier import" in line
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]


def test_deploy_of_a_registry_alias_imports_it_into_the_running_mesh_and_gives_it_its_role(registry, tmp_path):
    models = tmp_path / "models"
    served = meshserve_import("models:/iris/1", "--tracking-uri", registry["uri"], "-o", str(models / "iris-1"))
    assert served.returncode == 0, served.stderr
    move_alias(registry["uri"], "iris", "champion", "2")
    mesh = start_mesh(models, env={"MESHSERVE_ENVS_DIR": str(registry["envs"]), "MESHSERVE_WATCH_INTERVAL_S": "1"},
                      timeout=300)
    try:
        deployed = subprocess.run(meshserve_argv("deploy", "models:/iris@champion", "--canary", "50", "--tracking-uri",
                                                 registry["uri"], "--address", mesh.address),
                                  capture_output=True, text=True, cwd=ROOT, timeout=400)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert (f"imported models:/iris@champion (@champion -> version 2, pinned) as iris:2 into "
                f"{(models / 'iris-2').resolve()}") in deployed.stdout
        assert "deployed iris:2 as canary (50%)" in deployed.stdout
        assert "now serving iris:2 at weight 0" in mesh.output
        answers = [infer(mesh.address, "iris") for _ in range(30)]
        assert {version for version, _ in answers} == {"1", "2"}
        assert all(predictions == registry["expected"]["iris"][version] for version, predictions in answers)
    finally:
        mesh.stop()
