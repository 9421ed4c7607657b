"""The Java runtime used directly (no gRPC): a Java team's models give the numbers Java gives.

The oracle is always a separate `java` process running the same model with plain Java code.
The JVM started here lives for the whole test process (it cannot restart), so every package in
this module shares it, each through its own class loader, as the runtime is designed to allow.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from meshserve.core.errors import InvalidInput, ManifestError, ModelFailed
from meshserve.core.model_package import load_package

jpype = pytest.importorskip("jpype", reason="jpype1 is not installed (pip install -e .[java])")
from meshserve.core.model_package import sha256_of  # noqa: E402
from meshserve.adapters.java.environment import capture_environment  # noqa: E402
from meshserve.adapters.java.runtime import JavaRuntime  # noqa: E402
from conftest import ROOT  # noqa: E402
from java_oracle import (API_JAR, LOAN_DIR, NOT_BUILT, WEKA_DIR, WEKA_JAR, java_examples_built,  # noqa: E402
                         loan_oracle)
from java_oracle import iris_rows as shared_iris_rows  # noqa: E402
from java_oracle import loan_rows as shared_loan_rows  # noqa: E402
from java_oracle import weka_oracle as shared_weka_oracle  # noqa: E402

pytestmark = pytest.mark.skipif(not java_examples_built() or shutil.which("javac") is None, reason=NOT_BUILT)


def run(coro):
    return asyncio.run(coro)


def iris_rows() -> np.ndarray:
    return shared_iris_rows(seed=7, noise=0.3, every=3)


def weka_oracle(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    table = shared_weka_oracle(rows)
    return table[:, :3], table[:, 3].astype(int)


def loan_rows(n: int = 200) -> np.ndarray:
    return shared_loan_rows(n, seed=11)


@pytest.fixture(scope="module")
def weka():
    runtime = JavaRuntime()
    run(runtime.load(load_package(WEKA_DIR)))
    yield runtime
    run(runtime.close())


@pytest.fixture(scope="module")
def loan():
    runtime = JavaRuntime()
    run(runtime.load(load_package(LOAN_DIR)))
    yield runtime
    run(runtime.close())


# A legacy scorer (path (b)) and a misbehaving interface model, compiled for this module only.
TEST_JAVA = {
    "com/acme/LegacyScorer.java": """
        package com.acme;
        import java.nio.file.*;
        /** Knows nothing of meshserve: weights in a text file, three calling conventions. */
        public class LegacyScorer {
            private final double[] w;
            public LegacyScorer(String weightsFile) throws Exception {
                String[] cells = Files.readString(Path.of(weightsFile)).trim().split(",");
                w = new double[cells.length];
                for (int i = 0; i < w.length; i++) w[i] = Double.parseDouble(cells[i]);
            }
            public double[] scoreFlat(double[] x, int rows) {
                double[] out = new double[rows];
                for (int r = 0; r < rows; r++) for (int c = 0; c < w.length; c++) out[r] += w[c] * x[r * w.length + c];
                return out;
            }
            public double[] scoreMatrix(double[][] x) {
                double[] out = new double[x.length];
                for (int r = 0; r < x.length; r++) out[r] = scoreRow(x[r]);
                return out;
            }
            public double scoreRow(double[] row) {
                if (row.length != w.length) throw new IllegalArgumentException("expected " + w.length + " values, got " + row.length);
                double s = 0; for (int c = 0; c < w.length; c++) s += w[c] * row[c]; return s;
            }
            public double scaledRow(double[] row, int n) { return scoreRow(row) * n; }
            public static String[] labels(double[] x, int rows) {
                String[] out = new String[rows];
                for (int r = 0; r < rows; r++) out[r] = x[r * 3] > 0 ? "positive" : "not positive";
                return out;
            }
        }
    """,
    "com/acme/Outer.java": """
        package com.acme;
        /** A nested class, as libraries such as xgboost-predictor have (FVec.Transformer). */
        public class Outer {
            public static class Inner {
                public static double[] twice(double[] x, int rows) {
                    double[] y = new double[rows];
                    for (int i = 0; i < rows; i++) y[i] = 2 * x[i * 3];
                    return y;
                }
            }
        }
    """,
    "com/acme/Misbehaving.java": """
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
                return Map.of("y", Tensor.of(y, x.length));
            }
        }
    """,
}


@pytest.fixture(scope="module")
def test_jar(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("java-src")
    for name, text in TEST_JAVA.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(textwrap.dedent(text))
    classes = src / "classes"
    subprocess.run(["javac", "--release", "17", "-cp", str(API_JAR), "-d", str(classes),
                    *map(str, src.rglob("*.java"))], check=True, timeout=120)
    jar = src / "acme.jar"
    subprocess.run(["jar", "--create", "--file", str(jar), "-C", str(classes), "."], check=True, timeout=60)
    return jar


def write_package(directory: Path, manifest: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return directory


def legacy_manifest(jar: Path, calls: list[dict], outputs: list[dict]) -> dict:
    return {
        "name": "acme", "version": "1", "runtime": "java",
        "signature": {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 3]}], "outputs": outputs},
        "java": {"classpath": [{"path": str(jar)}],
                 "legacy": {"objects": {"scorer": {"new": "com.acme.LegacyScorer", "args": [{"file": "weights.csv"}]}},
                            "calls": calls}},
    }


def misbehaving_manifest(jar: Path, **java: object) -> dict:
    return {
        "name": "misbehaving", "version": "1", "runtime": "java",
        "signature": {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}],
                      "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}]},
        "java": {"classpath": [{"path": str(jar)}], "class": "com.acme.Misbehaving", "heap": "128m", **java},
    }


# ------------------------------------------------------------------------------------------------

def test_weka_j48_served_as_is_gives_the_numbers_weka_gives(weka):
    rows = iris_rows()
    out = run(weka.predict({"measurements": rows}))
    probabilities, species = weka_oracle(rows)
    np.testing.assert_array_equal(out["probabilities"], probabilities)
    np.testing.assert_array_equal(out["species_index"], species)
    assert out["probabilities"].shape == (len(rows), 3) and out["species_index"].dtype == np.int32


def test_interface_model_gives_the_numbers_plain_java_gives(loan):
    rows = loan_rows()
    out = run(loan.predict({"applicant": rows}))
    oracle = loan_oracle(rows)
    np.testing.assert_array_equal(out["default_probability"], oracle[:, 0])
    np.testing.assert_array_equal(out["risk_band"], oracle[:, 1].astype(np.int32))


def test_concurrent_requests_from_many_threads_all_get_their_own_answer(weka):
    rows = iris_rows()
    expected, _ = weka_oracle(rows)

    async def many():
        return await asyncio.gather(*[weka.predict({"measurements": rows[i:i + 1]}) for i in range(len(rows))])

    with ThreadPoolExecutor(4) as pool:  # several event loops at once, as several servers would
        results = list(pool.map(lambda _: run(many()), range(4)))
    for answers in results:
        got = np.vstack([a["probabilities"] for a in answers])
        np.testing.assert_array_equal(got, expected)


def weka_package_with(tmp_path: Path, shape: list[int], features: list[str] | None) -> Path:
    """The Weka example with its input declared another way; the model and its header unchanged."""
    pkg = tmp_path / "weka"
    shutil.copytree(WEKA_DIR, pkg, ignore=shutil.ignore_patterns("build", "train", "data"))
    manifest = yaml.safe_load((pkg / "model.yaml").read_text())
    measurements = {"name": "measurements", "datatype": "FP64", "shape": shape}
    manifest["signature"]["inputs"] = [measurements | ({"features": features} if features else {})]
    manifest.pop("golden", None)
    (pkg / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return pkg


def test_a_weka_model_declared_with_fewer_features_than_its_header_is_refused_at_load(tmp_path):
    pkg = weka_package_with(tmp_path, [-1, 3], ["sepal_length", "sepal_width", "petal_length"])
    with pytest.raises(ManifestError) as caught:
        run(JavaRuntime().load(load_package(pkg)))
    assert caught.value.field == "signature.inputs[0].shape"
    assert "'measurements' has 3 values per row but the dataset header 'header' takes 4" in caught.value.problem
    assert "[-1, 4]" in caught.value.fix


def test_rows_shorter_than_the_weka_header_are_refused_when_the_signature_leaves_the_width_open(tmp_path):
    runtime = JavaRuntime()
    run(runtime.load(load_package(weka_package_with(tmp_path, [-1, -1], None))))
    rows = iris_rows()[:5]
    with pytest.raises(InvalidInput, match=r"input 'measurements': has 3 values per row but the model takes 4"):
        run(runtime.predict({"measurements": rows[:, :3]}))
    np.testing.assert_array_equal(run(runtime.predict({"measurements": rows}))["probabilities"], weka_oracle(rows)[0])
    run(runtime.close())


def test_legacy_code_takes_a_flat_array_a_matrix_or_one_row_per_call(tmp_path, test_jar):
    outputs = [{"name": n, "datatype": "FP64", "shape": [-1]} for n in ("flat", "matrix", "per_row", "scaled")]
    outputs.append({"name": "label", "datatype": "BYTES", "shape": [-1]})
    calls = [
        {"output": "flat", "target": "scorer", "method": "scoreFlat", "args": [{"input": "x"}, {"rows": "x"}]},
        {"output": "matrix", "target": "scorer", "method": "scoreMatrix", "args": [{"matrix": "x"}]},
        {"output": "per_row", "target": "scorer", "method": "scoreRow", "each_row": True, "args": [{"row": "x"}]},
        {"output": "label", "static": "com.acme.LegacyScorer.labels", "args": [{"input": "x"}, {"rows": "x"}]},
        # needs the batch size in each row's call: runs row by row from Python, same answers
        {"output": "scaled", "target": "scorer", "method": "scaledRow", "each_row": True,
         "args": [{"row": "x"}, {"rows": "x"}]},
    ]
    pkg = write_package(tmp_path / "acme", legacy_manifest(test_jar, calls, outputs))
    (pkg / "weights.csv").write_text("0.5,-1,2\n")
    runtime = JavaRuntime()
    run(runtime.load(load_package(pkg)))
    x = np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 0.25]])
    out = run(runtime.predict({"x": x}))
    expected = x @ np.array([0.5, -1, 2])
    for name in ("flat", "matrix", "per_row"):
        np.testing.assert_allclose(out[name], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["scaled"], expected * 2, rtol=0, atol=1e-12)
    assert list(out["label"]) == [b"positive", b"not positive"]


def test_a_changed_jar_is_refused_at_load_naming_the_jar_and_both_digests(tmp_path):
    pkg = tmp_path / "loan"
    shutil.copytree(LOAN_DIR, pkg)
    manifest = yaml.safe_load((pkg / "model.yaml").read_text())
    jar = pkg / "build" / "loan-default.jar"
    recorded = sha256_of(jar)
    manifest["java"]["classpath"][0]["sha256"] = recorded
    (pkg / "model.yaml").write_text(yaml.safe_dump(manifest))
    load_package(pkg)  # the recorded digest matches: loads

    with open(jar, "ab") as f:  # someone rebuilt or patched the jar
        f.write(b"\0")
    changed = sha256_of(jar)
    with pytest.raises(ManifestError) as err:
        run(JavaRuntime().load(load_package(pkg)))
    message = str(err.value)
    assert str(jar) in message and recorded in message and changed in message


def test_digests_recorded_by_packaging_are_checked_too(tmp_path):
    pkg = tmp_path / "loan"
    shutil.copytree(LOAN_DIR, pkg)
    manifest = yaml.safe_load((pkg / "model.yaml").read_text())
    manifest["environment"] = capture_environment(load_package(pkg))
    manifest["environment"]["java"]["jars"]["build/loan-default.jar"] = "0" * 64
    (pkg / "model.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(ManifestError, match="0{64}"):
        run(JavaRuntime().load(load_package(pkg)))


def test_packaging_captures_java_version_and_every_jar_digest():
    env = capture_environment(load_package(WEKA_DIR))["java"]
    assert env["version"].startswith("17") or int(env["version"].split(".")[0]) >= 17
    assert env["jars"] == {str(WEKA_JAR): sha256_of(WEKA_JAR)}


@pytest.mark.parametrize("change, field", [
    ({"legacy": {"calls": [{"output": "y", "static": "A.b"}]}}, "java"),  # both class and legacy
    ({"class": None}, "java"),                                             # neither
    ({"heap": "lots"}, "java.heap"),
    ({"jvm_options": ["Xmx1g"]}, "java.jvm_options"),
    ({"classpath": [{"path": "missing.jar"}]}, "java.classpath[0].path"),
])
def test_a_malformed_java_section_is_named_before_any_jvm_starts(tmp_path, test_jar, change, field):
    manifest = misbehaving_manifest(test_jar)
    manifest["java"].update(change)
    manifest["java"] = {k: v for k, v in manifest["java"].items() if v is not None}
    with pytest.raises(ManifestError) as err:
        load_package(write_package(tmp_path / "bad", manifest))
    assert err.value.field.startswith(field)


def test_a_row_argument_outside_a_per_row_call_is_a_manifest_error(tmp_path, test_jar):
    calls = [{"output": "y", "target": "scorer", "method": "scoreRow", "args": [{"row": "x"}]}]
    manifest = legacy_manifest(test_jar, calls, [{"name": "y", "datatype": "FP64", "shape": [-1]}])
    with pytest.raises(ManifestError, match="each_row"):
        load_package(write_package(tmp_path / "bad", manifest))


def test_java_exceptions_become_statuses_and_the_jvm_keeps_serving(tmp_path, test_jar):
    pkg = write_package(tmp_path / "misbehaving", misbehaving_manifest(test_jar, on_out_of_memory="continue"))
    runtime = JavaRuntime()
    run(runtime.load(load_package(pkg)))

    with pytest.raises(InvalidInput, match=r"java\.lang\.IllegalArgumentException: x must not be 1"):
        run(runtime.predict({"x": np.array([1.0])}))
    with pytest.raises(ModelFailed, match=r"java\.lang\.IllegalStateException: the model is confused"):
        run(runtime.predict({"x": np.array([2.0])}))
    with pytest.raises(ModelFailed, match=r"java\.lang\.OutOfMemoryError"):
        run(runtime.predict({"x": np.array([3.0])}))
    out = run(runtime.predict({"x": np.array([5.0, 6.0])}))
    np.testing.assert_array_equal(out["y"], [10.0, 12.0])
    assert run(runtime.ready())


def test_a_strict_package_refuses_another_java_version(tmp_path):
    pkg = tmp_path / "loan"
    shutil.copytree(LOAN_DIR, pkg)
    manifest = yaml.safe_load((pkg / "model.yaml").read_text())
    manifest["environment"] = capture_environment(load_package(pkg))
    manifest["environment"]["java"]["version"] = "11.0.2+9"
    manifest["environment"]["strict"] = True
    (pkg / "model.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(ManifestError, match=r"packaged with Java 11\.0\.2\+9"):
        run(JavaRuntime().load(load_package(pkg)))
    manifest["environment"]["strict"] = False  # not strict: a warning, and the model serves
    (pkg / "model.yaml").write_text(yaml.safe_dump(manifest))
    runtime = JavaRuntime()
    run(runtime.load(load_package(pkg)))
    assert run(runtime.predict({"applicant": loan_rows(3)}))["risk_band"].shape == (3,)


def test_a_nested_class_resolves_written_as_java_users_write_it(tmp_path, test_jar):
    outputs = [{"name": n, "datatype": "FP64", "shape": [-1]} for n in ("dotted", "binary")]
    calls = [{"output": "dotted", "static": "com.acme.Outer.Inner.twice", "args": [{"input": "x"}, {"rows": "x"}]},
             {"output": "binary", "static": "com.acme.Outer$Inner.twice", "args": [{"input": "x"}, {"rows": "x"}]}]
    pkg = write_package(tmp_path / "acme", legacy_manifest(test_jar, calls, outputs))
    (pkg / "weights.csv").write_text("0.5,-1,2\n")
    runtime = JavaRuntime()
    run(runtime.load(load_package(pkg)))
    out = run(runtime.predict({"x": np.array([[1.0, 2.0, 3.0], [4.0, 0.5, 0.25]])}))
    assert out["dotted"].tolist() == out["binary"].tolist() == [2.0, 8.0]


@pytest.mark.parametrize("call, field, words", [
    ({"output": "flat", "target": "scorer", "method": "scoreFlatt", "args": [{"input": "x"}, {"rows": "x"}]},
     "java.legacy.calls.flat.method", "scoreFlat"),
    ({"output": "flat", "static": "com.acme.LegacyScorer.label", "args": [{"input": "x"}, {"rows": "x"}]},
     "java.legacy.calls.flat.static", "labels"),
    ({"output": "flat", "static": "com.acme.NoSuchScorer.score", "args": [{"input": "x"}]},
     "java.legacy.calls.flat.static", "no class 'com.acme.NoSuchScorer'"),
], ids=["method", "static-method", "class"])
def test_a_call_that_does_not_exist_is_refused_when_the_model_loads(tmp_path, test_jar, call, field, words):
    outputs = [{"name": "flat", "datatype": "FP64", "shape": [-1]}]
    pkg = write_package(tmp_path / "acme", legacy_manifest(test_jar, [call], outputs))
    (pkg / "weights.csv").write_text("0.5,-1,2\n")
    with pytest.raises(ManifestError) as caught:
        run(JavaRuntime().load(load_package(pkg)))
    assert f"field '{field}'" in str(caught.value) and words in str(caught.value)


LIBSVM_JAR = Path("/usr/share/java/libsvm.jar")


@pytest.mark.skipif(not LIBSVM_JAR.exists(), reason="Debian's libsvm-java is not installed (scripts/setup.d/40-java.sh)")
def test_libsvm_served_through_the_java_guides_wrapper_gives_the_labels_libsvm_gives(tmp_path):
    """The guide's LibsvmScorer, exactly as the guide prints it, over a model libsvm trains here."""
    import re

    from sklearn.datasets import load_iris

    guide = (ROOT / "docs" / "java-guide.md").read_text()
    source = re.search(r"```java\n(// LibsvmScorer\.java.*?)```", guide, re.S).group(1)
    build = tmp_path / "build"
    build.mkdir()
    (build / "LibsvmScorer.java").write_text(source)
    subprocess.run(["javac", "--release", "17", "-cp", str(LIBSVM_JAR), "-d", str(build / "classes"),
                    str(build / "LibsvmScorer.java")], check=True, timeout=120)
    pkg = tmp_path / "iris-svm"
    pkg.mkdir()
    subprocess.run(["jar", "--create", "--file", str(pkg / "scorer.jar"), "-C", str(build / "classes"), "."],
                   check=True, timeout=60)
    data = load_iris()
    lines = [f"{int(t)} " + " ".join(f"{j + 1}:{v}" for j, v in enumerate(row)) for row, t in zip(data.data, data.target)]
    (build / "iris.txt").write_text("\n".join(lines) + "\n")
    subprocess.run(["java", "-cp", str(LIBSVM_JAR), "svm_train", "-q", str(build / "iris.txt"), str(pkg / "model.svm")],
                   check=True, timeout=120)
    subprocess.run(["java", "-cp", str(LIBSVM_JAR), "svm_predict", "-q", str(build / "iris.txt"), str(pkg / "model.svm"),
                    str(build / "expected.txt")], check=True, timeout=120)
    expected = [float(v) for v in (build / "expected.txt").read_text().split()]
    write_package(pkg, {
        "name": "iris-svm", "version": "1", "runtime": "java",
        "signature": {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 4]}],
                      "outputs": [{"name": "label", "datatype": "FP64", "shape": [-1]}]},
        "java": {"classpath": [{"path": "scorer.jar"}, {"path": str(LIBSVM_JAR)}],
                 "legacy": {"objects": {"scorer": {"new": "LibsvmScorer", "args": [{"file": "model.svm"}]}},
                            "calls": [{"output": "label", "target": "scorer", "method": "predict",
                                       "args": [{"input": "x"}, {"rows": "x"}]}]}}})
    runtime = JavaRuntime()
    run(runtime.load(load_package(pkg)))
    out = run(runtime.predict({"x": np.ascontiguousarray(data.data)}))
    assert out["label"].tolist() == expected
