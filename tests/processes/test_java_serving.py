"""A Java team's models behind `meshserve up`, called with stock tritonclient.

Stories: the Weka model they already had and the class they wrote for meshserve's interface give
the numbers plain Java gives; 16 clients at once get only right answers; bad input and Java
exceptions get a clear status and the next request is served; a model that runs out of memory
gets UNAVAILABLE, its adapter restarts, and it serves again.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from tritonclient.grpc import InferenceServerClient, InferenceServerException, InferInput

from conftest import start_mesh
from java_oracle import API_JAR, LOAN_DIR, NOT_BUILT, WEKA_DIR, java_examples_built, loan_oracle, weka_oracle
from java_oracle import iris_rows as shared_iris_rows
from java_oracle import loan_rows as shared_loan_rows

pytest.importorskip("jpype", reason="jpype1 is not installed (pip install -e .[java])")

SOAK_SECONDS = float(os.environ.get("MESHSERVE_JAVA_SOAK_S", "6"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not java_examples_built(), reason=NOT_BUILT),
]

MISBEHAVING_JAVA = """
    package com.acme;
    import io.meshserve.*;
    import java.util.*;
    /** x = 1: bad input; 2: a bug; 3: allocates until OutOfMemoryError; else y = 2x. */
    public class Misbehaving implements Model {
        public Map<String, Object> predict(Map<String, Tensor> inputs) {
            double[] x = inputs.get("x").doubles();
            if (x[0] == 1) throw new IllegalArgumentException("x must not be 1");
            if (x[0] == 2) throw new IllegalStateException("the model is confused");
            if (x[0] == 3) { List<long[]> hog = new ArrayList<>(); while (true) hog.add(new long[1 << 20]); }
            double[] y = new double[x.length];
            for (int i = 0; i < x.length; i++) y[i] = 2 * x[i];
            return Map.of("y", y);
        }
    }
"""


def misbehaving_package(folder: Path) -> Path:
    src = folder / "src" / "com" / "acme" / "Misbehaving.java"
    src.parent.mkdir(parents=True)
    src.write_text(textwrap.dedent(MISBEHAVING_JAVA))
    subprocess.run(["javac", "--release", "17", "-cp", str(API_JAR), "-d", str(folder / "classes"), str(src)],
                   check=True, timeout=120)
    subprocess.run(["jar", "--create", "--file", str(folder / "misbehaving.jar"), "-C", str(folder / "classes"), "."],
                   check=True, timeout=60)
    (folder / "model.yaml").write_text(yaml.safe_dump({
        "name": "misbehaving", "version": "1", "runtime": "java",
        "signature": {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}],
                      "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}]},
        "java": {"classpath": [{"path": "misbehaving.jar"}], "class": "com.acme.Misbehaving", "heap": "64m"},
    }))
    return folder


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    models = tmp_path_factory.mktemp("java-models")
    (models / "weka").symlink_to(WEKA_DIR, target_is_directory=True)
    (models / "loan").symlink_to(LOAN_DIR, target_is_directory=True)
    misbehaving_package(models / "misbehaving")
    process = start_mesh(models)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(mesh):
    with InferenceServerClient(mesh.address) as c:
        yield c


def iris_rows() -> np.ndarray:
    return shared_iris_rows(seed=3, noise=0.25)


def loan_rows(n: int = 300) -> np.ndarray:
    return shared_loan_rows(n, seed=5)


def infer(client: InferenceServerClient, model: str, name: str, rows: np.ndarray, datatype: str = "FP64",
          timeout: float = 30):
    x = InferInput(name, list(rows.shape), datatype)
    x.set_data_from_numpy(rows)
    return client.infer(model, [x], client_timeout=timeout)


def status_of(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as err:
        call()
    return err.value


# ------------------------------------------------------------------------------------------------

def test_stock_tritonclient_gets_the_numbers_weka_gives(client):
    rows = iris_rows()
    oracle = weka_oracle(rows)
    whole = infer(client, "iris_j48", "measurements", rows)
    np.testing.assert_array_equal(whole.as_numpy("probabilities"), oracle[:, :3])
    np.testing.assert_array_equal(whole.as_numpy("species_index"), oracle[:, 3].astype(np.int32))
    for i in range(0, len(rows), 37):  # and one row per request
        one = infer(client, "iris_j48", "measurements", rows[i:i + 1])
        np.testing.assert_array_equal(one.as_numpy("probabilities")[0], oracle[i, :3])


def test_interface_model_through_the_mesh_gives_the_numbers_plain_java_gives(client):
    rows = loan_rows()
    oracle = loan_oracle(rows)
    result = infer(client, "loan_default", "applicant", rows)
    np.testing.assert_array_equal(result.as_numpy("default_probability"), oracle[:, 0])
    np.testing.assert_array_equal(result.as_numpy("risk_band"), oracle[:, 1].astype(np.int32))


def test_sixteen_clients_for_six_seconds_get_no_errors_and_no_wrong_answers(mesh):
    iris, loans = iris_rows(), loan_rows()
    iris_expected, loan_expected = weka_oracle(iris), loan_oracle(loans)
    deadline = time.monotonic() + SOAK_SECONDS
    problems: list[str] = []
    counts = [0] * 16
    lock = threading.Lock()

    def client_loop(k: int) -> None:
        with InferenceServerClient(mesh.address) as c:
            i = k
            while time.monotonic() < deadline:
                n = 1 + (i % 4)  # 1 to 4 rows per request, so micro-batches mix sizes
                try:
                    if i % 2:
                        rows = np.take(iris, range(i, i + n), axis=0, mode="wrap")
                        got = infer(c, "iris_j48", "measurements", rows).as_numpy("probabilities")
                        want = np.take(iris_expected, range(i, i + n), axis=0, mode="wrap")[:, :3]
                    else:
                        rows = np.take(loans, range(i, i + n), axis=0, mode="wrap")
                        got = infer(c, "loan_default", "applicant", rows).as_numpy("default_probability")
                        want = np.take(loan_expected, range(i, i + n), axis=0, mode="wrap")[:, 0]
                    if not np.array_equal(got, want):
                        with lock:
                            problems.append(f"client {k} request {i}: wrong answer {got} != {want}")
                except Exception as exc:
                    with lock:
                        problems.append(f"client {k} request {i}: {exc}")
                counts[k] += 1
                i += 16

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(client_loop, range(16)))
    print(f"16 clients, {SOAK_SECONDS:.0f} s: {sum(counts)} requests, {len(problems)} problems")
    assert problems == []
    assert all(c > 0 for c in counts)


def test_wrong_datatype_is_invalid_argument_naming_the_input(client):
    err = status_of(lambda: infer(client, "iris_j48", "measurements", np.ones((1, 4), np.float32), "FP32"))
    assert err.status() == "StatusCode.INVALID_ARGUMENT"
    assert "measurements" in err.message() and "FP64" in err.message()
    assert infer(client, "iris_j48", "measurements", np.ones((1, 4))).as_numpy("probabilities").shape == (1, 3)


def test_wrong_shape_is_invalid_argument_naming_the_input(client):
    err = status_of(lambda: infer(client, "iris_j48", "measurements", np.ones((2, 5))))
    assert err.status() == "StatusCode.INVALID_ARGUMENT"
    assert "measurements" in err.message()
    assert infer(client, "iris_j48", "measurements", np.ones((2, 4))).as_numpy("probabilities").shape == (2, 3)


def test_illegal_argument_from_java_is_invalid_argument_with_class_and_message(client):
    bad = np.array([[-5.0, 0.3, 40, 1]])
    err = status_of(lambda: infer(client, "loan_default", "applicant", bad))
    assert err.status() == "StatusCode.INVALID_ARGUMENT"
    assert "java.lang.IllegalArgumentException" in err.message() and "income_k must be >= 0" in err.message()
    assert infer(client, "loan_default", "applicant", np.array([[50.0, 0.3, 40, 1]])).as_numpy("risk_band").shape == (1,)


def test_other_java_exceptions_are_internal_with_class_and_message(client):
    err = status_of(lambda: infer(client, "misbehaving", "x", np.array([2.0])))
    assert err.status() == "StatusCode.INTERNAL"
    assert "java.lang.IllegalStateException" in err.message() and "the model is confused" in err.message()
    err = status_of(lambda: infer(client, "misbehaving", "x", np.array([1.0])))
    assert err.status() == "StatusCode.INVALID_ARGUMENT" and "x must not be 1" in err.message()
    np.testing.assert_array_equal(infer(client, "misbehaving", "x", np.array([4.0])).as_numpy("y"), [8.0])


def test_out_of_memory_gets_unavailable_then_the_adapter_restarts_and_serves(client, mesh):
    started = len(mesh.lines)
    err = status_of(lambda: infer(client, "misbehaving", "x", np.array([3.0])))
    assert err.status() == "StatusCode.UNAVAILABLE"
    assert "java.lang.OutOfMemoryError" in err.message()
    mesh.wait_for_line(r"misbehaving:1 is back", timeout=120, start=started)
    deadline = time.monotonic() + 60
    while True:  # the router may need a moment to reconnect; every attempt answers, none hangs
        try:
            y = infer(client, "misbehaving", "x", np.array([4.0]), timeout=10).as_numpy("y")
            break
        except InferenceServerException as exc:
            assert exc.status() == "StatusCode.UNAVAILABLE", exc
            assert time.monotonic() < deadline, "the restarted adapter never served"
            time.sleep(0.2)
    np.testing.assert_array_equal(y, [8.0])
    # the other Java models were never disturbed
    assert infer(client, "iris_j48", "measurements", np.ones((1, 4))).as_numpy("probabilities").shape == (1, 3)
