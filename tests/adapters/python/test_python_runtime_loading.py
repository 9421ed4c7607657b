"""The Python runtime in-process: what model.yaml names is what gets loaded and called, and every
mistake a team makes in its package is refused at load with the file, the field and the fix
(a missing function, an estimator method it lacks, a library the environment does not have),
while a request the model cannot take is the client's INVALID_ARGUMENT."""

from __future__ import annotations

import asyncio

import joblib
import numpy as np
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from meshserve.adapters.python.runtime import PythonRuntime
from meshserve.core.errors import InvalidInput, ManifestError
from meshserve.core.model_package import load_package

FEATURES = [{"name": "features", "datatype": "FP64", "shape": [-1, 2]}]
LABEL = {"name": "label", "datatype": "INT64", "shape": [-1]}
PROBABILITIES = {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]}


def package_at(folder, entrypoint: str, outputs: list[dict], inputs: list[dict] = FEATURES, **extra):
    folder.mkdir(exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump({
        "name": "scorer", "version": "1", "runtime": "python", "entrypoint": entrypoint,
        "signature": {"inputs": inputs, "outputs": outputs}, **extra}))
    return folder


def loaded(folder):
    runtime = PythonRuntime()
    asyncio.run(runtime.load(load_package(folder)))
    return runtime


def predict(runtime: PythonRuntime, **inputs) -> dict:
    async def scored():
        try:
            return await runtime.predict(inputs)
        finally:
            await runtime.close()
    return asyncio.run(scored())


def module_name(tmp_path) -> str:
    """A module name of this test's own: modules stay imported for the whole session."""
    return "scorer_" + "".join(c if c.isalnum() else "_" for c in tmp_path.name)


def fitted_classifier() -> LogisticRegression:
    features = np.array([[0.0, 0.0], [0.1, 0.2], [1.0, 1.0], [0.9, 1.1]])
    return LogisticRegression().fit(features, np.array([0, 0, 1, 1]))


ROWS = np.array([[0.0, 0.1], [1.0, 0.9]])


def test_a_function_returning_one_array_answers_the_single_output(tmp_path):
    name = module_name(tmp_path)
    folder = package_at(tmp_path / "pkg", f"{name}:score", [LABEL])
    (folder / f"{name}.py").write_text("def score(inputs):\n    return (inputs['features'].sum(axis=1) > 1).astype('int64')\n")
    answer = predict(loaded(folder), features=ROWS)
    assert list(answer) == ["label"] and answer["label"].tolist() == [0, 1]


def test_a_function_returning_a_dict_answers_every_output_it_names(tmp_path):
    name = module_name(tmp_path)
    folder = package_at(tmp_path / "pkg", f"{name}:score", [LABEL, PROBABILITIES])
    (folder / f"{name}.py").write_text(
        "import numpy as np\n"
        "def score(inputs):\n"
        "    p = inputs['features'].mean(axis=1)\n"
        "    return {'label': (p > 0.5).astype('int64'), 'probabilities': np.stack([1 - p, p], axis=1)}\n")
    answer = predict(loaded(folder), features=ROWS)
    assert answer["label"].tolist() == [0, 1]
    assert np.allclose(answer["probabilities"], [[0.95, 0.05], [0.05, 0.95]])


def test_a_function_the_module_does_not_define_is_refused_naming_those_it_does(tmp_path):
    name = module_name(tmp_path)
    folder = package_at(tmp_path / "pkg", f"{name}:predict", [LABEL])
    (folder / f"{name}.py").write_text("def score(inputs):\n    return inputs['features']\n\ndef train():\n    pass\n")
    with pytest.raises(ManifestError) as refused:
        loaded(folder)
    assert refused.value.field == "entrypoint"
    assert f"{name} has no function predict" in refused.value.problem
    assert "score" in refused.value.fix and "train" in refused.value.fix


def test_a_module_importing_a_library_this_environment_lacks_names_the_library_and_where_to_pin_it(tmp_path):
    name = module_name(tmp_path)
    folder = package_at(tmp_path / "pkg", f"{name}:score", [LABEL])
    (folder / f"{name}.py").write_text("import catboost_not_installed_here\n\ndef score(inputs):\n    pass\n")
    with pytest.raises(ManifestError) as refused:
        loaded(folder)
    assert refused.value.field == "environment.python.requirements"
    assert "imports catboost_not_installed_here" in refused.value.problem
    assert "environment.python.requirements" in refused.value.fix


def test_an_estimator_answers_each_output_with_the_method_model_yaml_names(tmp_path):
    folder = package_at(tmp_path / "pkg", "model.joblib", [LABEL, PROBABILITIES],
                        python={"methods": {"label": "predict", "probabilities": "predict_proba"}})
    model = fitted_classifier()
    joblib.dump(model, folder / "model.joblib")
    answer = predict(loaded(folder), features=ROWS)
    assert answer["label"].tolist() == model.predict(ROWS).tolist() == [0, 1]
    assert np.allclose(answer["probabilities"], model.predict_proba(ROWS))


def test_an_estimator_with_one_output_is_scored_with_predict_when_model_yaml_names_no_method(tmp_path):
    folder = package_at(tmp_path / "pkg", "model.joblib", [LABEL])
    joblib.dump(fitted_classifier(), folder / "model.joblib")
    assert predict(loaded(folder), features=ROWS)["label"].tolist() == [0, 1]


def test_a_method_the_estimator_lacks_is_refused_with_the_closest_it_has(tmp_path):
    folder = package_at(tmp_path / "pkg", "model.joblib", [LABEL, PROBABILITIES],
                        python={"methods": {"label": "predict", "probabilities": "predict_probability"}})
    joblib.dump(fitted_classifier(), folder / "model.joblib")
    with pytest.raises(ManifestError) as refused:
        loaded(folder)
    assert refused.value.field == "python.methods.probabilities"
    assert refused.value.problem == "LogisticRegression has no method predict_probability"
    assert "{probabilities: predict_proba}" in refused.value.fix


def test_a_one_dimensional_request_to_a_two_dimensional_estimator_is_the_clients_mistake(tmp_path):
    folder = package_at(tmp_path / "pkg", "model.joblib", [LABEL])
    joblib.dump(fitted_classifier(), folder / "model.joblib")
    with pytest.raises(InvalidInput) as refused:
        predict(loaded(folder), features=np.array([0.0, 1.0]))
    assert refused.value.input_name == "features" and "got 1-D" in refused.value.reason


def test_a_category_model_yaml_declares_is_checked_before_the_function_runs(tmp_path):
    name = module_name(tmp_path)
    region = {"name": "region", "datatype": "BYTES", "shape": [-1], "limits": {"region": {"categories": ["north", "south"]}}}
    folder = package_at(tmp_path / "pkg", f"{name}:score", [LABEL], inputs=[region])
    (folder / f"{name}.py").write_text(
        "import numpy as np\n"
        "CALLS = []\n"
        "def score(inputs):\n"
        "    CALLS.append(1)\n"
        "    return np.array([v == b'north' for v in inputs['region']], dtype='int64')\n")
    runtime = loaded(folder)
    with pytest.raises(InvalidInput) as refused:
        predict(runtime, region=np.array([b"north", b"west"], dtype=object))
    assert refused.value.input_name == "region" and "'west'" in refused.value.reason
    assert "model.yaml limits" in refused.value.reason
    assert __import__(name).CALLS == [], "the model never saw the refused request"
    assert predict(loaded(folder), region=np.array([b"north", b"south"], dtype=object))["label"].tolist() == [1, 0]


@pytest.mark.parametrize("entrypoint, outputs, python, field, words", [
    ("", [LABEL], None, "entrypoint", "missing"),
    ("model.joblib", [LABEL], None, "entrypoint", "does not exist"),
    ("model.pkl", [LABEL, PROBABILITIES], None, "python.methods", "2 outputs but no estimator method for each"),
    ("model.pkl", [LABEL, PROBABILITIES], {"methods": {"label": "predict"}}, "python.methods",
     "no method for output(s) probabilities"),
    ("model.h5", [LABEL], None, "entrypoint", "is neither a joblib or skops file"),
])
def test_a_package_that_cannot_be_served_is_refused_before_loading(tmp_path, entrypoint, outputs, python, field, words):
    folder = package_at(tmp_path / "pkg", entrypoint, outputs, **({"python": python} if python else {}))
    if entrypoint == "model.pkl":
        joblib.dump(fitted_classifier(), folder / "model.pkl")
    with pytest.raises(ManifestError) as refused:
        load_package(folder)
    assert refused.value.field == field and words in refused.value.problem, refused.value


def test_a_dataframe_pipeline_gets_its_columns_by_name_and_refuses_a_category_its_encoder_never_learnt(tmp_path):
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"region": ["north", "south"] * 10, "income": np.linspace(20, 90, 20),
                          "age": np.linspace(70, 18, 20)})
    pipeline = Pipeline([("columns", ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="error"), ["region"])],
                                                       remainder="passthrough")),
                         ("classify", LogisticRegression(max_iter=300))]).fit(frame, np.arange(20) % 2)
    inputs = [{"name": "region", "datatype": "BYTES", "shape": [-1]},
              {"name": "numbers", "datatype": "FP64", "shape": [-1, 2], "features": ["income", "age"]}]
    folder = package_at(tmp_path / "pkg", "pipeline.joblib", [LABEL], inputs=inputs)
    joblib.dump(pipeline, folder / "pipeline.joblib")
    request = {"region": np.array([b"south", b"north"], dtype=object), "numbers": np.array([[30.0, 60.0], [80.0, 20.0]])}

    expected = pipeline.predict(pd.DataFrame({"region": ["south", "north"], "income": [30.0, 80.0], "age": [60.0, 20.0]}))
    assert predict(loaded(folder), **request)["label"].tolist() == expected.tolist()
    with pytest.raises(InvalidInput) as refused:
        predict(loaded(folder), **(request | {"region": np.array([b"south", b"west"], dtype=object)}))
    assert refused.value.input_name == "region" and "'west'" in refused.value.reason
