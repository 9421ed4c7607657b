"""Factors a formula makes from a column (`glm(am ~ factor(cyl) + wt)`), and levels declared in an
order other than the model's: R models trained here from mtcars and warpbreaks answer what plain
Rscript answers for every row, a declaration that leaves out one of the model's levels is refused
at load naming the field and the fix, a value the model never saw is INVALID_ARGUMENT naming the
input, the value and the levels (never R's INTERNAL `factor factor(cyl) has new level 0`), and where
the model keeps no levels `meshserve check` says it could not compare them and asks for golden examples."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import yaml
from r_oracle import r_dataset, rscript, rscript_available, rscript_predictions

from meshserve.core.errors import InvalidInput, ManifestError
from meshserve.core.model_package import load_package

pytestmark = pytest.mark.skipif(not rscript_available(), reason="R is missing: run scripts/setup.sh")

LOOP = asyncio.new_event_loop()  # a runtime's coroutines all run on the loop it was loaded on

TRAIN = """
suppressPackageStartupMessages({ library(randomForest); library(ranger) })
set.seed(1)
saveRDS(glm(am ~ factor(cyl) + wt, data = mtcars, family = binomial()), "mt_glm.rds")
saveRDS(randomForest(breaks ~ wool + tension, data = warpbreaks, ntree = 60), "wb_rf.rds")
saveRDS(ranger(breaks ~ wool + tension, data = warpbreaks, num.trees = 60, seed = 1, num.threads = 1,
               respect.unordered.factors = "order"), "wb_ranger_order.rds")
saveRDS(ranger(breaks ~ wool + tension, data = warpbreaks, num.trees = 60, seed = 1, num.threads = 1),
        "wb_ranger.rds")
saveRDS(randomForest(ncases ~ agegp + alcgp, data = esoph, ntree = 60), "es_rf.rds")
"""

MTCARS_RESPONSE = "predict(model, newdata, type = 'response')"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("r-trained")
    rscript(f"setwd({str(folder)!r}); {TRAIN}")
    return folder


def run(coro):
    return LOOP.run_until_complete(coro)


def make_package(root: Path, model_file: Path, columns: list[dict], datatypes: dict[str, str],
                 **r_options) -> Path:
    folder = root / f"{model_file.stem}-{len(list(root.iterdir()))}"
    folder.mkdir()
    (folder / "model.rds").symlink_to(model_file)
    manifest = {
        "name": model_file.stem.replace("_", "-"), "version": "1", "runtime": "r",
        "signature": {
            "inputs": [{"name": c["name"], "datatype": datatypes.get(c["name"], "BYTES"), "shape": [-1]}
                       for c in columns],
            "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}],
        },
        "r": {"columns": columns, **r_options},
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def loaded(folder: Path):
    from meshserve.adapters.r.runtime import RRuntime

    runtime = RRuntime()
    run(runtime.load(load_package(folder)))
    return runtime


def predictions(folder: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    runtime = loaded(folder)
    try:
        return run(runtime.predict(inputs))["y"]
    finally:
        run(runtime.close())


def refused_request(folder: Path, inputs: dict[str, np.ndarray]) -> InvalidInput:
    runtime = loaded(folder)
    try:
        with pytest.raises(InvalidInput) as caught:
            run(runtime.predict(inputs))
    finally:
        run(runtime.close())
    return caught.value


def mtcars_package(root: Path, models: Path, cyl: dict, cyl_datatype: str) -> Path:
    columns = [{"name": "cyl", **cyl}, {"name": "wt", "type": "numeric"}]
    return make_package(root, models / "mt_glm.rds", columns, {"cyl": cyl_datatype, "wt": "FP64"},
                        predict_args={"type": "response"})


def mtcars_inputs(cyl_datatype: str) -> dict[str, np.ndarray]:
    rows = r_dataset("mtcars", ["cyl", "wt"])
    cyl = [r["cyl"] for r in rows]
    return {"cyl": np.array([c.encode() for c in cyl], dtype=object) if cyl_datatype == "BYTES"
            else np.array([float(c) for c in cyl]).astype({"FP64": np.float64, "INT32": np.int32}[cyl_datatype]),
            "wt": np.array([float(r["wt"]) for r in rows])}


def test_a_formula_factor_declared_without_one_of_the_models_levels_is_refused_at_load(models, tmp_path):
    from meshserve.adapters.r.runtime import RRuntime

    folder = mtcars_package(tmp_path, models, {"type": "factor", "levels": ["4", "6"]}, "BYTES")
    with pytest.raises(ManifestError) as caught:
        run(RRuntime().load(load_package(folder)))
    error = caught.value
    assert error.path.endswith("model.yaml") and error.field == "r.columns[0].levels"
    assert "column 'cyl', which the model turns into factor(cyl), declares levels ['4', '6']" in error.problem
    assert "the model also knows '8'" in error.problem
    assert error.fix.startswith("add the missing level '8', or declare the column's levels as the model's: "
                                "levels: ['4', '6', '8']")


@pytest.mark.parametrize("cyl, datatype", [
    ({"type": "factor", "levels": ["8", "4", "6"]}, "BYTES"),  # model.frame() matches these levels by label
    ({"type": "factor", "levels": ["4", "6", "8"]}, "INT32"),  # a client sends cyl = 8 as a number
    ({"type": "numeric"}, "FP64"),
    ({"type": "integer"}, "INT32"),
])
def test_a_formula_factor_gives_what_rscript_gives_for_every_mtcars_row(models, tmp_path, cyl, datatype):
    got = predictions(mtcars_package(tmp_path, models, cyl, datatype), mtcars_inputs(datatype))
    want = rscript_predictions(models / "mt_glm.rds", "mtcars", [], MTCARS_RESPONSE)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)


@pytest.mark.parametrize("cyl, datatype", [({"type": "numeric"}, "FP64"), ({"type": "integer"}, "INT32")])
def test_a_number_the_formula_factor_never_saw_is_invalid_argument_not_an_r_error(models, tmp_path, cyl, datatype):
    dtype = np.float64 if datatype == "FP64" else np.int32
    error = refused_request(mtcars_package(tmp_path, models, cyl, datatype),
                            {"cyl": np.array([4, 0], dtype=dtype), "wt": np.array([2.5, 3.0])})
    assert error.input_name == "cyl"
    assert error.reason == ("column 'cyl' row 1: value 0 is not a level of factor(cyl), which the model makes "
                            "from it; the model knows 4, 6, 8")


def test_a_number_sent_for_a_factor_column_must_name_one_of_its_levels(models, tmp_path):
    folder = mtcars_package(tmp_path, models, {"type": "factor", "levels": ["4", "6", "8"]}, "FP64")
    error = refused_request(folder, {"cyl": np.array([6.0, 5.0]), "wt": np.array([2.5, 3.0])})
    assert error.input_name == "cyl"
    assert error.reason == "column 'cyl' row 1: unknown factor level 5; levels are 4, 6, 8"


def test_a_formula_factor_declared_numeric_with_levels_that_are_words_is_refused(models, tmp_path):
    rscript(f"setwd({str(tmp_path)!r}); saveRDS(glm(breaks ~ factor(tension), family = poisson(), "
            "data = warpbreaks), 'wb_term.rds')")
    from meshserve.adapters.r.runtime import RRuntime

    (tmp_path / "packages").mkdir()
    folder = make_package(tmp_path / "packages", tmp_path / "wb_term.rds", [{"name": "tension", "type": "numeric"}],
                          {"tension": "FP64"})

    with pytest.raises(ManifestError) as caught:
        run(RRuntime().load(load_package(folder)))
    assert caught.value.field == "r.columns[0].type"
    assert "the model turns it into factor(tension) with levels [L, M, H]" in caught.value.problem
    assert caught.value.fix.startswith("declare it as {name: tension, type: factor, levels: [L, M, H]}")


@pytest.mark.parametrize("model, packages, tension", [
    # The R factor is built on the model's own levels, by label: positions in model.yaml do not matter.
    ("wb_rf", ["randomForest"], ["L", "XL", "M", "H"]),
    ("wb_ranger_order", ["ranger"], ["H", "L", "M"]),
])
def test_levels_declared_at_other_positions_give_what_rscript_gives_for_every_warpbreaks_row(
        models, tmp_path, model, packages, tension):
    columns = [{"name": "wool", "type": "factor", "levels": ["B", "A"] if model == "wb_ranger_order" else ["A", "B"]},
               {"name": "tension", "type": "factor", "levels": tension}]
    folder = make_package(tmp_path, models / f"{model}.rds", columns, {}, packages=packages)
    rows = r_dataset("warpbreaks", ["wool", "tension"])
    got = predictions(folder, {n: np.array([r[n].encode() for r in rows], dtype=object) for n in ("wool", "tension")})
    oracle = "predict(model, newdata)$predictions" if model.startswith("wb_ranger") else "predict(model, newdata)"
    want = rscript_predictions(models / f"{model}.rds", "warpbreaks", packages, oracle)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)


def test_check_says_where_it_could_not_compare_levels_and_asks_for_golden_examples(models, tmp_path, capsys):
    columns = [{"name": "wool", "type": "factor", "levels": ["A", "B"]},
               {"name": "tension", "type": "factor", "levels": ["M", "H", "L"]}]
    package = load_package(make_package(tmp_path, models / "wb_ranger.rds", columns, {}, packages=["ranger"]))
    package.options.check_model(package)
    report = capsys.readouterr().err
    assert f"meshserve: {package.manifest_path}: could not compare these factor levels with the model's:" in report
    assert ("field 'r.columns[1].levels': the model keeps no levels for column 'tension', so the declared "
            "[M, H, L] (in this order) could not be compared with the model's") in report
    assert "meshserve package DIR --golden-from FILE" in report

    package = load_package(mtcars_package(tmp_path, models, {"type": "numeric"}, "FP64"))
    package.options.check_model(package)
    assert "could not compare" not in capsys.readouterr().err


def test_check_says_randomforest_keeps_no_levels_for_an_ordered_factor(models, tmp_path, capsys):
    # randomForest reads an ordered factor by its codes and keeps no levels for it to compare with.
    columns = [{"name": "agegp", "type": "ordered", "levels": ["25-34", "35-44", "45-54", "55-64", "65-74", "75+"]},
               {"name": "alcgp", "type": "ordered", "levels": ["80-119", "0-39g/day", "40-79", "120+"]}]
    package = load_package(make_package(tmp_path, models / "es_rf.rds", columns, {}, packages=["randomForest"]))
    package.options.check_model(package)
    report = capsys.readouterr().err
    assert ("field 'r.columns[1].levels': the model keeps no levels for column 'alcgp', so the declared "
            "[80-119, 0-39g/day, 40-79, 120+] (in this order) could not be compared with the model's") in report
    assert "golden examples" in report
