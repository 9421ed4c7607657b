"""R models served by `meshserve up` to stock tritonclient: the numbers R gives, under
concurrent load, with bad input refused by name, R errors reported with R's message, and a
crash of R costing only that model's adapter, which the mesh restarts."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import yaml
from tritonclient.utils import InferenceServerException

from conftest import start_mesh
from r_oracle import (FAULTY, INFERT, INFERT_COLUMNS, IRIS, IRIS_FEATURES, oracle_scores, r_dataset,
                      rscript_available)

CLASSES = ("setosa", "versicolor", "virginica")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not rscript_available() or not (IRIS / "model.rds").exists(),
                       reason="R or the trained R examples are missing: run scripts/setup.sh"),
]


@pytest.fixture(scope="module")
def r_mesh(tmp_path_factory):
    """One mesh serving both R examples and the deliberately faulty R model, without and with workers."""
    models = tmp_path_factory.mktemp("r-models")
    (models / "r_iris_randomforest").symlink_to(IRIS, target_is_directory=True)
    (models / "r_infert_glm").symlink_to(INFERT, target_is_directory=True)
    for folder, name, workers in (("r_faulty_model", "r-faulty", 0), ("r_faulty_workers", "r-faulty-workers", 2)):
        shutil.copytree(FAULTY, models / folder)
        manifest = yaml.safe_load((models / folder / "model.yaml").read_text())
        manifest["name"], manifest["r"]["workers"] = name, workers
        (models / folder / "model.yaml").write_text(yaml.safe_dump(manifest))
        subprocess.run(["Rscript", "--vanilla", "-e",
                        f"saveRDS(list(scale = 2), {str(models / folder / 'model.rds')!r})"], check=True)
    # Two replicas of the model without workers: a request that crashes R must cost one of them only.
    (models / "meshserve.yaml").write_text(yaml.safe_dump(
        {"models": {"r-faulty": {"variants": [{"version": "1", "weight": 100, "replicas": 2}]}}}))
    process = start_mesh(models)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def iris_oracle():
    rows = r_dataset("iris", IRIS_FEATURES)
    expected = oracle_scores("iris-randomforest", IRIS, rows)
    features = np.array([[float(r[f]) for f in IRIS_FEATURES] for r in rows])
    species = [e["species"] for e in expected]
    probabilities = np.array([[float(e[c]) for c in CLASSES] for e in expected])
    return features, species, probabilities


def client(mesh) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(mesh.address)


def tensor(name: str, array: np.ndarray, datatype: str) -> grpcclient.InferInput:
    t = grpcclient.InferInput(name, list(array.shape), datatype)
    t.set_data_from_numpy(array)
    return t


def infert_request(rows: list[dict[str, str]]) -> list[grpcclient.InferInput]:
    return [
        tensor("education", np.array([r["education"].encode() for r in rows], dtype=object), "BYTES"),
        tensor("age", np.array([float(r["age"]) for r in rows]), "FP64"),
        tensor("parity", np.array([int(float(r["parity"])) for r in rows], dtype=np.int32), "INT32"),
        tensor("history", np.array([[float(r["induced"]), float(r["spontaneous"])] for r in rows]), "FP64"),
    ]


def faulty(mesh, x: float, model: str = "r-faulty"):
    return client(mesh).infer(model, [tensor("x", np.array([x]), "FP64")]).as_numpy("y")


def refusal(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


def test_stock_tritonclient_gets_the_numbers_rscript_gives_for_every_iris_row(r_mesh, iris_oracle):
    features, species, probabilities = iris_oracle
    result = client(r_mesh).infer("iris-randomforest", [tensor("measurements", features, "FP64")])
    assert result.get_response().model_name == "iris-randomforest"
    assert [s.decode() for s in result.as_numpy("species")] == species
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=1e-9, atol=0)


def test_the_factor_model_gives_the_numbers_rscript_gives_for_every_infert_row(r_mesh):
    rows = r_dataset("infert", INFERT_COLUMNS)
    expected = [float(e["probability"]) for e in oracle_scores("infert-glm", INFERT, rows)]
    result = client(r_mesh).infer("infert-glm", infert_request(rows))
    np.testing.assert_allclose(result.as_numpy("probability"), expected, rtol=1e-9, atol=0)


def test_eight_clients_for_six_seconds_get_only_right_answers(r_mesh, iris_oracle):
    features, species, probabilities = iris_oracle
    stop_at = time.monotonic() + 6
    counts = {"ok": 0, "wrong": 0, "errors": 0}
    problems: list[str] = []
    lock = threading.Lock()

    def one_client(seed: int) -> None:
        rng = random.Random(seed)
        own = client(r_mesh)  # each client its own channel, as separate programs would have
        while time.monotonic() < stop_at:
            rows = rng.sample(range(len(species)), rng.randint(1, 3))
            try:
                result = own.infer("iris-randomforest", [tensor("measurements", features[rows], "FP64")])
                right = ([s.decode() for s in result.as_numpy("species")] == [species[i] for i in rows]
                         and np.allclose(result.as_numpy("probabilities"), probabilities[rows], rtol=1e-9, atol=0))
                outcome = "ok" if right else "wrong"
            except InferenceServerException as exc:
                outcome = "errors"
                with lock:
                    problems.append(str(exc))
            with lock:
                counts[outcome] += 1

    threads = [threading.Thread(target=one_client, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts["errors"] == 0, problems[:3]
    assert counts["wrong"] == 0
    assert counts["ok"] > 8
    assert "iris-randomforest:1 exited" not in r_mesh.output, "the R adapter crashed under load"


@pytest.mark.parametrize("name, make_inputs, message", [
    ("a string where the model takes numbers",
     lambda rows: [tensor("measurements", np.array([[b"5.1", b"3.5", b"1.4", b"0.2"]], dtype=object), "BYTES")],
     "measurements"),
    ("an unknown factor level",
     lambda rows: [tensor("education", np.array([b"PhD"], dtype=object), "BYTES")] + infert_request(rows[:1])[1:],
     "input 'education': column 'education' row 0: unknown factor level 'PhD'; levels are 0-5yrs, 6-11yrs, 12+ yrs"),
    ("a missing column",
     lambda rows: infert_request(rows[:1])[:3],
     "history"),
    ("NaN where the model forbids missing values",
     lambda rows: [tensor("measurements", np.array([[5.1, np.nan, 1.4, 0.2]]), "FP64")],
     "input 'measurements': column 'Sepal.Width' row 0 is NaN"),
])
def test_bad_input_is_refused_naming_the_input_and_the_model_serves_the_next_request(
        r_mesh, iris_oracle, name, make_inputs, message):
    rows = r_dataset("infert", INFERT_COLUMNS)
    inputs = make_inputs(rows)
    model = "infert-glm" if inputs[0].name() in ("education", "age") else "iris-randomforest"
    error = refusal(lambda: client(r_mesh).infer(model, inputs))
    assert error.status() == "StatusCode.INVALID_ARGUMENT", name
    assert message in error.message(), error.message()
    features, species, _ = iris_oracle
    ok = client(r_mesh).infer("iris-randomforest", [tensor("measurements", features[:1], "FP64")])
    assert ok.as_numpy("species")[0].decode() == species[0]


def test_an_r_stop_is_an_internal_error_with_rs_message_and_r_keeps_serving(r_mesh):
    error = refusal(lambda: faulty(r_mesh, 1.0))
    assert error.status() == "StatusCode.INTERNAL"
    assert "x = 1 is refused by this model" in error.message()
    assert list(faulty(r_mesh, 5.0)) == [10.0]


def test_an_invalid_input_condition_from_r_is_invalid_argument(r_mesh):
    error = refusal(lambda: faulty(r_mesh, -1.0))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "x must not be negative" in error.message()


def test_runaway_recursion_in_r_is_an_error_and_the_same_adapter_serves_on(r_mesh):
    error = refusal(lambda: faulty(r_mesh, 2.0))
    assert error.status() == "StatusCode.INTERNAL"
    assert "stack" in error.message()
    assert list(faulty(r_mesh, 6.0)) == [12.0]
    assert not re.search(r"r-faulty:1(#\d)? exited", r_mesh.output)


def test_a_crash_of_r_is_unavailable_and_the_mesh_restarts_only_that_adapter(r_mesh, iris_oracle):
    features, species, _ = iris_oracle
    error = refusal(lambda: faulty(r_mesh, 3.0))  # R kills its own process with SIGSEGV
    assert error.status() == "StatusCode.UNAVAILABLE"
    # The other replica of the same model serves on: the crashing request was not replayed to it.
    assert [list(faulty(r_mesh, x)) for x in (5.0, 6.0, 8.0)] == [[10.0], [12.0], [16.0]]
    assert len(re.findall(r"r-faulty:1#\d exited", r_mesh.output)) == 1
    # The other R models keep serving while the crashed adapter restarts.
    ok = client(r_mesh).infer("iris-randomforest", [tensor("measurements", features[:1], "FP64")])
    assert ok.as_numpy("species")[0].decode() == species[0]
    r_mesh.wait_for_line(r"r-faulty:1#\d is back", timeout=120)
    assert list(faulty(r_mesh, 7.0)) == [14.0]


def test_with_r_workers_a_crash_costs_only_the_request_that_caused_it(r_mesh):
    error = refusal(lambda: faulty(r_mesh, 3.0, "r-faulty-workers"))
    # INTERNAL, not UNAVAILABLE: the mesh retries UNAVAILABLE elsewhere, and this request would
    # crash every R it reached.
    assert error.status() == "StatusCode.INTERNAL"
    assert "R crashed while scoring this request (killed by SIGSEGV)" in error.message()
    assert [list(faulty(r_mesh, x, "r-faulty-workers")) for x in (5.0, 6.0, 7.0)] == [[10.0], [12.0], [14.0]]
    assert "r-faulty-workers:1 exited" not in r_mesh.output
