"""Factor and ordered columns against the levels the model stored at training: R models trained
here from data that ships with R (warpbreaks, esoph) with glm, randomForest and ranger answer what
plain Rscript answers, and declared levels that disagree with the model are refused at load,
naming the column, both sets of levels and the fix."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from r_oracle import r_dataset, rscript, rscript_available, rscript_predictions

from meshserve.core.errors import InvalidInput, ManifestError
from meshserve.core.model_package import load_package

pytestmark = pytest.mark.skipif(not rscript_available(), reason="R is missing: run scripts/setup.sh")

LOOP = asyncio.new_event_loop()  # a runtime's coroutines all run on the loop it was loaded on

TENSION = ["L", "M", "H"]
WOOL = ["A", "B"]
AGEGP = ["25-34", "35-44", "45-54", "55-64", "65-74", "75+"]
ALCGP = ["0-39g/day", "40-79", "80-119", "120+"]
TOBGP = ["0-9g/day", "10-19", "20-29", "30+"]

TRAIN = """
suppressPackageStartupMessages({ library(randomForest); library(ranger) })
set.seed(1)
saveRDS(glm(breaks ~ wool + tension, family = poisson(), data = warpbreaks), "wb_glm.rds")
saveRDS(randomForest(breaks ~ wool + tension, data = warpbreaks, ntree = 60), "wb_rf.rds")
saveRDS(ranger(breaks ~ wool + tension, data = warpbreaks, num.trees = 60, seed = 1, num.threads = 1,
               respect.unordered.factors = "order"), "wb_ranger_order.rds")
saveRDS(ranger(breaks ~ wool + tension, data = warpbreaks, num.trees = 60, seed = 1, num.threads = 1),
        "wb_ranger.rds")
saveRDS(glm(cbind(ncases, ncontrols) ~ agegp + alcgp + tobgp, family = binomial(), data = esoph), "es_glm.rds")
saveRDS(randomForest(ncases ~ agegp + alcgp + tobgp, data = esoph, ntree = 60), "es_rf.rds")
teeth <- ToothGrowth; teeth$supp <- as.character(teeth$supp)  # text, as data.frame() leaves it since R 4.0
saveRDS(lm(len ~ supp + dose, data = teeth), "tg_lm.rds")
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("r-trained")
    rscript(f"setwd({str(folder)!r}); {TRAIN}")
    return folder


def run(coro):
    return LOOP.run_until_complete(coro)


def make_package(root: Path, model_file: Path, columns: list[dict], output: str = "y", **r_options) -> Path:
    folder = root / f"{model_file.stem}-{len(list(root.iterdir()))}"
    folder.mkdir()
    (folder / "model.rds").symlink_to(model_file)
    manifest = {
        "name": model_file.stem.replace("_", "-"), "version": "1", "runtime": "r",
        "signature": {
            "inputs": [{"name": c["name"], "datatype": "BYTES", "shape": [-1]} for c in columns],
            "outputs": [{"name": output, "datatype": "FP64", "shape": [-1]}],
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


def refusal(folder: Path) -> ManifestError:
    from meshserve.adapters.r.runtime import RRuntime

    with pytest.raises(ManifestError) as caught:
        run(RRuntime().load(load_package(folder)))
    return caught.value


def text_inputs(rows: list[dict[str, str]], names: list[str]) -> dict[str, np.ndarray]:
    return {n: np.array([r[n].encode() for r in rows], dtype=object) for n in names}


def warpbreaks_columns(tension: list[str], tension_type: str = "factor") -> list[dict]:
    return [{"name": "wool", "type": "factor", "levels": WOOL},
            {"name": "tension", "type": tension_type, "levels": tension}]


ESOPH_COLUMNS = [{"name": "agegp", "type": "ordered", "levels": AGEGP},
                 {"name": "alcgp", "type": "ordered", "levels": ALCGP},
                 {"name": "tobgp", "type": "ordered", "levels": TOBGP}]


@pytest.mark.parametrize("model, packages, predict_args, oracle", [
    ("wb_glm", [], {"type": "response"}, "predict(model, newdata, type = 'response')"),
    ("wb_rf", ["randomForest"], {}, "predict(model, newdata)"),
    # ranger re-sorts the levels by the response ("order"); declared in training order they still agree.
    ("wb_ranger_order", ["ranger"], {}, "predict(model, newdata)$predictions"),
    # ranger without "order" keeps no levels: accepted as declared.
    ("wb_ranger", ["ranger"], {}, "predict(model, newdata)$predictions"),
])
def test_factor_models_give_what_rscript_gives_for_every_warpbreaks_row(models, tmp_path, model, packages,
                                                                       predict_args, oracle):
    folder = make_package(tmp_path, models / f"{model}.rds", warpbreaks_columns(TENSION),
                          packages=packages, predict_args=predict_args)
    runtime = loaded(folder)
    try:
        rows = r_dataset("warpbreaks", ["wool", "tension"])
        got = run(runtime.predict(text_inputs(rows, ["wool", "tension"])))["y"]
    finally:
        run(runtime.close())
    want = rscript_predictions(models / f"{model}.rds", "warpbreaks", packages, oracle)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)


@pytest.mark.parametrize("model, packages, predict_args, oracle", [
    ("es_glm", [], {"type": "response"}, "predict(model, newdata, type = 'response')"),
    ("es_rf", ["randomForest"], {}, "predict(model, newdata)"),
])
def test_ordered_factor_models_give_what_rscript_gives_for_every_esoph_row(models, tmp_path, model, packages,
                                                                          predict_args, oracle):
    folder = make_package(tmp_path, models / f"{model}.rds", ESOPH_COLUMNS, packages=packages,
                          predict_args=predict_args)
    runtime = loaded(folder)
    try:
        rows = r_dataset("esoph", ["agegp", "alcgp", "tobgp"])
        got = run(runtime.predict(text_inputs(rows, ["agegp", "alcgp", "tobgp"])))["y"]
    finally:
        run(runtime.close())
    want = rscript_predictions(models / f"{model}.rds", "esoph", packages, oracle)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)


@pytest.mark.parametrize("model, packages, where", [
    ("wb_rf", ["randomForest"], "forest$xlevels"),
    ("wb_glm", [], "xlevels"),
])
def test_levels_declared_in_another_order_are_refused_at_load_with_the_stored_order_as_the_fix(
        models, tmp_path, model, packages, where):
    # randomForest reads the codes by position: this declaration would score M as L, H as M, L as H.
    error = refusal(make_package(tmp_path, models / f"{model}.rds", warpbreaks_columns(["M", "H", "L"]),
                                 packages=packages))
    assert error.field == "r.columns[1].levels"
    assert f"column 'tension' declares levels [M, H, L] but the model stored [L, M, H] ({where})" in error.problem
    assert error.fix.startswith("copy the stored levels in that order: levels: [L, M, H]")
    assert "docs/r-guide.md" in error.fix


def test_a_level_the_model_knows_but_model_yaml_leaves_out_is_refused(models, tmp_path):
    error = refusal(make_package(tmp_path, models / "wb_rf.rds", warpbreaks_columns(["L", "M"]),
                                 packages=["randomForest"]))
    assert error.field == "r.columns[1].levels"
    assert "the model also knows 'H'" in error.problem


def test_an_ordered_column_declared_as_a_plain_factor_is_refused_and_the_reverse_too(models, tmp_path):
    columns = [dict(c, type="factor") if c["name"] == "alcgp" else c for c in ESOPH_COLUMNS]
    error = refusal(make_package(tmp_path, models / "es_rf.rds", columns, packages=["randomForest"]))
    assert error.field == "r.columns[1].type"
    assert "column 'alcgp' is declared factor but the model was trained with it as an ordered factor" in error.problem
    assert "type: ordered" in error.fix

    error = refusal(make_package(tmp_path, models / "wb_glm.rds", warpbreaks_columns(TENSION, "ordered")))
    assert error.field == "r.columns[1].type"
    assert "declared ordered but the model was trained with it as a factor" in error.problem
    assert "{name: tension, type: factor, levels: [L, M, H]}" in error.fix


def test_a_factor_declared_as_a_number_is_refused_with_the_levels_to_declare(models, tmp_path):
    folder = make_package(tmp_path, models / "wb_rf.rds", warpbreaks_columns(TENSION), packages=["randomForest"])
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest["signature"]["inputs"][1]["datatype"] = "FP64"
    manifest["r"]["columns"][1] = {"name": "tension", "type": "numeric"}
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest))
    error = refusal(folder)
    assert "column 'tension' is declared numeric but the model was trained with it as a factor" in error.problem
    assert "{name: tension, type: factor, levels: [L, M, H]}" in error.fix


def test_a_declared_level_the_model_never_saw_breaks_no_request_that_uses_known_levels(models, tmp_path, caplog):
    # randomForest itself refuses a whole data.frame whose factor merely lists an unseen level.
    folder = make_package(tmp_path, models / "wb_rf.rds", warpbreaks_columns(TENSION + ["XL"]),
                          packages=["randomForest"])
    with caplog.at_level(logging.WARNING, logger="meshserve.adapters.r"):
        runtime = loaded(folder)
    try:
        assert "column 'tension' declares level(s) 'XL' that the model never saw" in caplog.text
        rows = r_dataset("warpbreaks", ["wool", "tension"])
        got = run(runtime.predict(text_inputs(rows, ["wool", "tension"])))["y"]
        want = rscript_predictions(models / "wb_rf.rds", "warpbreaks", ["randomForest"])
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)
        with pytest.raises(InvalidInput) as caught:
            run(runtime.predict({"wool": np.array([b"A", b"B"], dtype=object),
                                 "tension": np.array([b"L", b"XL"], dtype=object)}))
    finally:
        run(runtime.close())
    assert caught.value.input_name == "tension"
    assert caught.value.reason == ("column 'tension' row 1: level 'XL' is declared in model.yaml but the model never "
                                   "saw it at training; the model knows L, M, H")


def test_ranger_matches_levels_by_label_so_only_their_set_is_checked(models, tmp_path):
    folder = make_package(tmp_path, models / "wb_ranger_order.rds", warpbreaks_columns(["L", "M"]),
                          packages=["ranger"])
    error = refusal(folder)
    assert "(forest$covariate.levels)" in error.problem and "the model also knows 'H'" in error.problem


def test_a_model_that_keeps_no_levels_is_served_as_declared(models, tmp_path, caplog):
    folder = make_package(tmp_path, models / "wb_ranger.rds", warpbreaks_columns(["M", "H", "L"]),
                          packages=["ranger"])
    with caplog.at_level(logging.DEBUG, logger="meshserve.adapters.r"):
        runtime = loaded(folder)
    run(runtime.close())
    assert "no stored levels for factor column 'tension'" in caplog.text


def test_a_text_column_the_model_turned_into_a_factor_refuses_values_it_never_saw(models, tmp_path):
    columns = [{"name": "supp", "type": "character"}, {"name": "dose", "type": "numeric"}]
    folder = make_package(tmp_path, models / "tg_lm.rds", columns)
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest["signature"]["inputs"][1]["datatype"] = "FP64"
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest))
    runtime = loaded(folder)
    try:
        rows = r_dataset("ToothGrowth", ["supp", "dose"])
        inputs = {"supp": np.array([r["supp"].encode() for r in rows], dtype=object),
                  "dose": np.array([float(r["dose"]) for r in rows])}
        got = run(runtime.predict(inputs))["y"]
        with pytest.raises(InvalidInput) as caught:
            run(runtime.predict({"supp": np.array([b"OJ", b"XX"], dtype=object), "dose": np.array([0.5, 1.0])}))
    finally:
        run(runtime.close())
    want = rscript_predictions(models / "tg_lm.rds", "transform(ToothGrowth, supp = as.character(supp))")
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)
    assert caught.value.reason == "column 'supp' row 1: value 'XX' was never seen at training; the model knows OJ, VC"


def test_a_variable_the_model_reads_but_no_column_gives_is_refused_at_load(models, tmp_path):
    error = refusal(make_package(tmp_path, models / "wb_rf.rds", warpbreaks_columns(TENSION)[:1],
                                 packages=["randomForest"]))
    assert error.field == "r.columns"
    assert "the model reads 'tension' from newdata, but no column gives it" in error.problem
    assert "{name: tension, type: factor, levels: [L, M, H]}" in error.fix
