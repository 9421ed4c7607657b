"""The R runtime on its own, in this process: an R team's model scored through rpy2 gives what
plain Rscript gives, requests that do not fit the declared columns are refused before R sees
them, R errors come back with R's message, and recorded package versions are checked at load."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from meshserve.core.errors import InvalidInput, ManifestError, ModelFailed
from meshserve.core.model_package import load_package
from r_oracle import (FAULTY, INFERT, INFERT_COLUMNS, IRIS, IRIS_FEATURES, oracle_scores, r_dataset,
                      rscript_available)


pytestmark = pytest.mark.skipif(
    not rscript_available() or not (IRIS / "model.rds").exists(),
    reason="R or the trained R examples are missing: run scripts/setup.sh",
)


# One loop for the whole module: a runtime's coroutines must all run on the loop it was loaded on.
LOOP = asyncio.new_event_loop()


def run(coro):
    return LOOP.run_until_complete(coro)


def loaded(package_dir: Path):
    from meshserve.adapters.r.runtime import RRuntime

    runtime = RRuntime()
    run(runtime.load(load_package(package_dir)))
    return runtime


@pytest.fixture(scope="module")
def iris_runtime():
    runtime = loaded(IRIS)
    yield runtime
    run(runtime.close())


@pytest.fixture(scope="module")
def infert_runtime():
    runtime = loaded(INFERT)
    yield runtime
    run(runtime.close())


@pytest.fixture(scope="module")
def faulty_package(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("r-faulty") / "r_faulty_model"
    shutil.copytree(FAULTY, folder)
    subprocess.run(["Rscript", "--vanilla", "-e", f"saveRDS(list(scale = 2), {str(folder / 'model.rds')!r})"],
                   check=True)
    return folder


def infert_inputs(rows: list[dict[str, str]]) -> dict[str, np.ndarray]:
    return {
        "education": np.array([r["education"].encode() for r in rows], dtype=object),
        "age": np.array([float(r["age"]) for r in rows]),
        "parity": np.array([int(float(r["parity"])) for r in rows], dtype=np.int32),
        "history": np.array([[float(r["induced"]), float(r["spontaneous"])] for r in rows]),
    }


def test_the_iris_forest_gives_what_rscript_gives_for_every_iris_row(iris_runtime):
    rows = r_dataset("iris", IRIS_FEATURES)
    expected = oracle_scores("iris-randomforest", IRIS, rows)
    got = run(iris_runtime.predict({"measurements": np.array([[float(r[f]) for f in IRIS_FEATURES] for r in rows])}))
    assert [s.decode() for s in got["species"]] == [e["species"] for e in expected]
    want = np.array([[float(e[c]) for c in ("setosa", "versicolor", "virginica")] for e in expected])
    np.testing.assert_allclose(got["probabilities"], want, rtol=1e-9, atol=0)


def test_the_infert_glm_with_a_factor_input_gives_what_rscript_gives(infert_runtime):
    rows = r_dataset("infert", INFERT_COLUMNS)
    expected = oracle_scores("infert-glm", INFERT, rows)
    got = run(infert_runtime.predict(infert_inputs(rows)))
    np.testing.assert_allclose(got["probability"], [float(e["probability"]) for e in expected], rtol=1e-9, atol=0)


def test_one_row_at_a_time_gives_the_same_answer_as_the_whole_batch(infert_runtime):
    rows = r_dataset("infert", INFERT_COLUMNS)[:5]
    batch = run(infert_runtime.predict(infert_inputs(rows)))["probability"]
    singles = [run(infert_runtime.predict(infert_inputs([r])))["probability"][0] for r in rows]
    np.testing.assert_array_equal(batch, singles)


def test_an_unknown_factor_level_is_refused_naming_the_column_and_the_levels(infert_runtime):
    rows = r_dataset("infert", INFERT_COLUMNS)[:2]
    inputs = infert_inputs(rows)
    inputs["education"] = np.array([b"0-5yrs", b"PhD"], dtype=object)
    with pytest.raises(InvalidInput) as caught:
        run(infert_runtime.predict(inputs))
    assert caught.value.input_name == "education"
    assert "column 'education' row 1: unknown factor level 'PhD'" in caught.value.reason
    assert "0-5yrs, 6-11yrs, 12+ yrs" in caught.value.reason


def test_nan_is_refused_where_the_model_forbids_missing_values(iris_runtime):
    with pytest.raises(InvalidInput) as caught:
        run(iris_runtime.predict({"measurements": np.array([[5.1, np.nan, 1.4, 0.2]])}))
    assert caught.value.input_name == "measurements"
    assert "column 'Sepal.Width' row 0 is NaN" in caught.value.reason


def test_a_missing_input_is_refused_before_r_sees_the_request(infert_runtime):
    inputs = infert_inputs(r_dataset("infert", INFERT_COLUMNS)[:1])
    del inputs["age"]
    with pytest.raises(InvalidInput, match="input 'age': missing"):
        run(infert_runtime.predict(inputs))


def test_inputs_with_different_row_counts_are_refused(infert_runtime):
    inputs = infert_inputs(r_dataset("infert", INFERT_COLUMNS)[:2])
    inputs["age"] = inputs["age"][:1]
    with pytest.raises(InvalidInput, match="has (1|2) rows but input .* has (1|2); every input needs one row per case"):
        run(infert_runtime.predict(inputs))


def test_a_request_with_no_rows_gets_empty_outputs(iris_runtime):
    got = run(iris_runtime.predict({"measurements": np.empty((0, 4))}))
    assert got["species"].shape == (0,) and got["probabilities"].shape == (0, 3)


@pytest.mark.parametrize("column_type, datatype, values, message", [
    ("numeric", "BYTES", [b"5.1", b"abc"], "column 'v' is numeric; row 1 holds 'abc', which is not a number"),
    ("integer", "FP64", [1.0, 2.5], "column 'v' is integer; row 1 holds 2.5"),
    ("logical", "INT32", [0, 7], "column 'v' is logical; row 1 holds 7"),
    ("character", "BYTES", [b"ok", b"\xff\xfe"], "column 'v': not UTF-8 text"),
])
def test_values_that_do_not_fit_the_declared_r_type_are_refused_naming_the_column(
        tmp_path, column_type, datatype, values, message):
    from meshserve.adapters.r.columns import ColumnPlan

    package = _package_with_column(tmp_path, column_type, datatype)
    plan = ColumnPlan.build(package.options, package)
    array = np.array(values, dtype=object if datatype == "BYTES" else None)
    with pytest.raises(InvalidInput) as caught:
        plan.pack({"v": array})
    assert caught.value.input_name == "v"
    assert message in caught.value.reason


def test_a_column_type_that_cannot_come_from_its_input_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError) as caught:
        _package_with_column(tmp_path, "factor", "FP64", levels=["a", "b"])
    assert caught.value.field == "r.columns[0].type"
    assert "column 'v' is factor but input 'v' is FP64" in caught.value.problem


def test_a_factor_column_without_levels_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="needs its levels"):
        _package_with_column(tmp_path, "factor", "BYTES")


def test_an_r_stop_becomes_an_error_with_rs_message_and_r_keeps_serving(faulty_package):
    runtime = loaded(faulty_package)
    try:
        with pytest.raises(ModelFailed, match="x = 1 is refused by this model"):
            run(runtime.predict({"x": np.array([1.0])}))
        np.testing.assert_array_equal(run(runtime.predict({"x": np.array([5.0, 6.0])}))["y"], [10.0, 12.0])
    finally:
        run(runtime.close())


def test_an_r_model_can_say_the_input_is_at_fault_with_an_invalid_input_condition(faulty_package):
    runtime = loaded(faulty_package)
    try:
        with pytest.raises(InvalidInput, match="^x must not be negative$"):
            run(runtime.predict({"x": np.array([-1.0])}))
    finally:
        run(runtime.close())


def test_runaway_recursion_in_r_is_an_r_error_not_a_crash(faulty_package):
    # rpy2 turns R's C stack check off; the runtime points it at the R thread's own stack.
    runtime = loaded(faulty_package)
    try:
        # Whichever of R's limits the recursion meets first: the C stack or the protect stack.
        with pytest.raises(ModelFailed, match="C stack usage|protection stack overflow"):
            run(runtime.predict({"x": np.array([2.0])}))
        np.testing.assert_array_equal(run(runtime.predict({"x": np.array([7.0])}))["y"], [14.0])
    finally:
        run(runtime.close())


def test_a_result_that_is_not_a_prediction_is_reported_not_returned(faulty_package):
    runtime = loaded(faulty_package)
    try:
        with pytest.raises(ModelFailed, match="holds text but output 'y' is FP64"):
            run(runtime.predict({"x": np.array([4.0])}))
    finally:
        run(runtime.close())


def test_package_records_r_and_the_versions_of_the_packages_the_model_loads(tmp_path):
    from meshserve.cli import main

    folder = _copy_package(IRIS, tmp_path)
    original = (folder / "model.yaml").read_text()
    assert main(["package", str(folder)]) == 0
    text = (folder / "model.yaml").read_text()
    assert text.startswith(original.rstrip("\n")), "the rest of model.yaml is kept as written"
    environment = yaml.safe_load(text)["environment"]
    assert environment["strict"] is False
    assert environment["r"]["version"].startswith("4.")
    assert "randomForest" in environment["r"]["packages"] and "stats" in environment["r"]["packages"]
    assert main(["package", str(folder), "--strict"]) == 0
    assert yaml.safe_load((folder / "model.yaml").read_text())["environment"]["strict"] is True
    assert (folder / "model.yaml").read_text().count("environment:") == 1


def test_a_different_package_version_warns_naming_both_versions_and_strict_refuses(tmp_path):
    from meshserve.adapters.r.environment import check_environment
    from meshserve.adapters.r.session import r_session
    from meshserve.cli import main

    folder = _copy_package(IRIS, tmp_path)
    assert main(["package", str(folder)]) == 0
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    running = manifest["environment"]["r"]["packages"]["randomForest"]
    manifest["environment"]["r"]["packages"]["randomForest"] = "0.0-1"
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest))
    package = load_package(folder)
    warnings = r_session().call_blocking(check_environment, package, package.options)
    assert warnings == [f"model iris-randomforest:1: R package randomForest: recorded 0.0-1, running {running}"]

    manifest["environment"]["strict"] = True
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest))
    from meshserve.adapters.r.runtime import RRuntime

    with pytest.raises(ManifestError, match=f"R package randomForest: recorded 0.0-1, running {running}"):
        run(RRuntime().load(load_package(folder)))


def _copy_package(source: Path, tmp_path: Path) -> Path:
    folder = tmp_path / source.name
    shutil.copytree(source, folder)
    return folder


def _package_with_column(tmp_path: Path, column_type: str, datatype: str, levels: list[str] | None = None):
    folder = _copy_package(FAULTY, tmp_path)
    (folder / "model.rds").write_bytes(b"")  # never read: these tests stop before R
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest["signature"]["inputs"] = [{"name": "v", "datatype": datatype, "shape": [-1]}]
    column = {"name": "v", "type": column_type}
    if levels:
        column["levels"] = levels
    manifest["r"]["columns"] = [column]
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest))
    return load_package(folder)


def test_forked_r_workers_score_concurrently_and_survive_a_crash_of_one(faulty_package, tmp_path):
    from meshserve.adapters.r.runtime import RRuntime

    folder = _copy_package(faulty_package, tmp_path)
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest["r"]["workers"] = 2
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest))
    runtime = RRuntime()
    run(runtime.load(load_package(folder)))
    try:
        async def many():
            return await asyncio.gather(*(runtime.predict({"x": np.array([float(i)])}) for i in range(10, 30)))

        assert [float(r["y"][0]) for r in run(many())] == [2.0 * i for i in range(10, 30)]
        with pytest.raises(ModelFailed, match=r"R crashed while scoring this request \(killed by SIGSEGV\)"):
            run(runtime.predict({"x": np.array([3.0])}))
        with pytest.raises(ModelFailed, match="x = 1 is refused"):
            run(runtime.predict({"x": np.array([1.0])}))
        assert [float(r["y"][0]) for r in run(many())] == [2.0 * i for i in range(10, 30)]
    finally:
        run(runtime.close())


def test_r_scores_without_calling_back_into_python(tmp_path, monkeypatch):
    # R asks for window-system events at every interrupt check; answered in Python, each ask
    # would make the R thread wait for the GIL the adapter's event loop holds.
    from rpy2.rinterface_lib import callbacks

    folder = _copy_package(IRIS, tmp_path)
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest["r"]["workers"] = 0  # score on this process's R thread, where the calls can be counted
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest))
    runtime = loaded(folder)
    asked = []
    monkeypatch.setattr(callbacks, "processevents", lambda: asked.append(1))
    try:
        rows = np.array([[5.9, 3.0, 5.1, 1.8]] * 20)
        for _ in range(5):
            assert len(run(runtime.predict({"measurements": rows}))["species"]) == 20
    finally:
        run(runtime.close())
    assert asked == []
