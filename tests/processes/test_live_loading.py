"""Packages copied into, or fixed in, the models folder of a running mesh are served without a
restart, and `meshserve deploy` gives a version found there its role.

One mesh serves breast-cancer 1 from a folder that also holds a broken iris-species package.
Unpinned requests to breast-cancer run against it all along, from a thread; none may fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton
import yaml
from conftest import EXAMPLES, meshserve_argv, start_mesh

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CANCER_ROW = np.zeros((1, 30))
IRIS_ROW = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
LOADED_WITHIN_S = 60  # the watcher looks every second here; an adapter loads in a few


class Traffic:
    """Unpinned requests to breast-cancer, one after another, counted by the version that answered."""

    def __init__(self, address: str):
        self.client = triton.InferenceServerClient(address)
        self.answered: Counter = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        features = triton.InferInput("features", list(CANCER_ROW.shape), "FP64")
        features.set_data_from_numpy(CANCER_ROW)
        while not self._stop.is_set():
            try:
                self.answered[self.client.infer("breast-cancer", [features]).get_response().model_version] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is reported by the tests
                self.failures.append(str(exc))
            time.sleep(0.02)

    def since(self, before: Counter) -> Counter:
        return self.answered - before

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.close()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(meshserve_argv(*args), capture_output=True, text=True, timeout=200)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    models = root / "models"
    models.mkdir()
    shutil.copytree(EXAMPLES / "breast_cancer", models / "cancer", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(EXAMPLES / "iris_species", models / "iris", ignore=shutil.ignore_patterns("__pycache__"))
    manifest = yaml.safe_load((models / "iris" / "model.yaml").read_text())
    manifest["runtime"] = "julia"
    (models / "iris" / "model.yaml").write_text(yaml.safe_dump(manifest))
    process = start_mesh(models, "--run-dir", str(root / "run"), env={"MESHSERVE_WATCH_INTERVAL_S": "1"})
    traffic = Traffic(process.address)
    try:
        yield {"process": process, "models": models, "run": root / "run", "traffic": traffic, "root": root}
    finally:
        traffic.stop()
        process.stop()


def infer(address: str, model: str, version: str = "") -> tuple[str, list]:
    client = triton.InferenceServerClient(address)
    try:
        row, name, output = (IRIS_ROW, "measurements", "species") if model == "iris-species" else \
            (CANCER_ROW, "features", "probabilities")
        tensor = triton.InferInput(name, list(row.shape), "FP32" if row.dtype == np.float32 else "FP64")
        tensor.set_data_from_numpy(row)
        answer = client.infer(model, [tensor], model_version=version)
        return answer.get_response().model_version, answer.as_numpy(output).tolist()
    finally:
        client.close()


def wait_until_answers(address: str, model: str, version: str = "") -> float:
    started = time.monotonic()
    while True:
        try:
            infer(address, model, version)
            return time.monotonic() - started
        except triton.InferenceServerException:
            if time.monotonic() - started > LOADED_WITHIN_S:
                raise
            time.sleep(0.2)


def log_entries(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "deployment-log.jsonl").read_text().splitlines()]


def test_a_broken_package_fixed_while_the_mesh_runs_is_served(mesh):
    process, models = mesh["process"], mesh["models"]
    assert "not serving iris-species" in process.output and "unknown runtime 'julia'" in process.output
    with pytest.raises(triton.InferenceServerException):
        infer(process.address, "iris-species")
    mark = len(process.lines)

    # Still broken, differently: said once, not every interval.
    manifest = yaml.safe_load((models / "iris" / "model.yaml").read_text())
    (models / "iris" / "model.yaml").write_text(yaml.safe_dump({**manifest, "runtime": "jython"}))
    process.wait_for_line(r"still not serving iris-species .*unknown runtime 'jython'", 30, start=mark)
    time.sleep(3)
    assert sum("unknown runtime 'jython'" in line for line in process.lines[mark:]) == 1

    (models / "iris" / "model.yaml").write_text(yaml.safe_dump({**manifest, "runtime": "python"}))
    process.wait_for_line(r"now serving iris-species:1 \(fixed since start\)", LOADED_WITHIN_S, start=mark)
    assert infer(process.address, "iris-species") == ("1", [b"setosa"])
    loaded = [e for e in log_entries(mesh["run"]) if e.get("model") == "iris-species"]
    assert loaded and loaded[-1]["by"] == "package watcher" and loaded[-1]["version"] == "1"
    assert len(loaded[-1]["digest"]) == 64
    assert mesh["traffic"].failures == [] and mesh["traffic"].answered["1"] > 0


def test_a_new_version_copied_in_answers_when_pinned_and_takes_traffic_once_deployed(mesh):
    process, traffic = mesh["process"], mesh["traffic"]
    mark = len(process.lines)
    shutil.copytree(EXAMPLES / "breast_cancer_v2", mesh["models"] / "cancer-2",
                    ignore=shutil.ignore_patterns("__pycache__"))
    process.wait_for_line(r"now serving breast-cancer:2 at weight 0: only requests naming version 2 reach it; "
                          r"give it a role with `meshserve deploy breast-cancer 2 --canary 10`", LOADED_WITHIN_S,
                          start=mark)
    assert infer(process.address, "breast-cancer", "2")[0] == "2"
    before = Counter(traffic.answered)
    time.sleep(2)
    unpinned = traffic.since(before)
    assert unpinned["1"] > 10 and unpinned["2"] == 0, unpinned
    entry = [e for e in log_entries(mesh["run"]) if e.get("model") == "breast-cancer"][-1]
    assert (entry["by"], entry["version"], entry["weight"]) == ("package watcher", "2", 0)

    deployed = cli("deploy", "breast-cancer", "2", "--canary", "50", "--address", process.address)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "deployed breast-cancer:2 as canary (50%)" in deployed.stdout
    before = Counter(traffic.answered)
    time.sleep(3)
    split = traffic.since(before)
    assert split["1"] > 5 and split["2"] > 5, split
    assert traffic.failures == []


def test_deploy_waits_for_a_package_just_copied_into_the_folder(mesh):
    process = mesh["process"]
    staged = mesh["root"] / "cancer-3"
    shutil.copytree(EXAMPLES / "breast_cancer_v2", staged, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = yaml.safe_load((staged / "model.yaml").read_text())
    (staged / "model.yaml").write_text(yaml.safe_dump({**manifest, "version": "3"}))
    os.rename(staged, mesh["models"] / "cancer-3")  # then deployed at once, before the watcher looked
    deployed = cli("deploy", "breast-cancer", "3", "--shadow", "0.5", "--address", process.address)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "breast-cancer:3 is not loaded yet" in deployed.stderr
    assert "deployed breast-cancer:3 as shadow (50% of requests)" in deployed.stdout
    assert infer(process.address, "breast-cancer", "3")[0] == "3"
    assert mesh["traffic"].failures == []


def test_deploying_a_version_that_is_nowhere_says_where_to_put_it(mesh):
    process = mesh["process"]
    refused = cli("deploy", "breast-cancer", "9", "--canary", "10", "--address", process.address)
    assert refused.returncode != 0
    folder = str(mesh["models"].resolve())
    assert (f"FAILED_PRECONDITION: version '9' of 'breast-cancer' is not running in this mesh (running: 1, 2, 3), "
            f"and no package of it is in the models folder {folder}. Put its package or bundle (model.yaml name "
            f"'breast-cancer', version '9') into the models folder {folder} and deploy again") in refused.stderr
    assert "restart the mesh" not in refused.stderr and "Traceback" not in refused.stderr
    unknown = cli("deploy", "no-such-model", "1", "--primary", "--address", process.address)
    assert unknown.returncode != 0
    assert "model 'no-such-model' is not served by this mesh, and no package of it is in the models folder" \
        in unknown.stderr
    assert mesh["traffic"].failures == []
