"""The Python models teams bring, served without a wrapper: a DataFrame Pipeline with a
ColumnTransformer, an ONNX graph; and the mistakes that must be caught at load, not per request."""

from __future__ import annotations

import subprocess

import joblib
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from conftest import meshserve_argv


def wine_frame() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_wine()
    frame = pd.DataFrame(data.data[:, :4], columns=["alcohol", "malic_acid", "ash", "alcalinity"])
    # A text column as production data has one: the wine's cellar, derived from its colour intensity.
    frame["cellar"] = np.where(data.data[:, 9] > 5, "north", np.where(data.data[:, 9] > 3, "south", "east"))
    return frame, data.target


def write_pipeline_package(folder, manifest_inputs, fitted_columns=None):
    frame, target = wine_frame()
    if fitted_columns is not None:
        frame = frame[fitted_columns]
    numeric = [c for c in frame.columns if c != "cellar"]
    pipeline = Pipeline([
        ("columns", ColumnTransformer([("scale", StandardScaler(), numeric),
                                       ("onehot", OneHotEncoder(handle_unknown="ignore"), ["cellar"])])),
        ("classify", LogisticRegression(max_iter=500)),
    ]).fit(frame, target)
    folder.mkdir()
    joblib.dump(pipeline, folder / "model.joblib")
    (folder / "model.yaml").write_text(yaml.safe_dump({
        "name": "wine", "version": "1", "runtime": "python", "entrypoint": "model.joblib",
        "signature": {"inputs": manifest_inputs,
                      "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                                  {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]}]},
        "python": {"methods": {"label": "predict", "probabilities": "predict_proba"}}}))
    return pipeline, frame


FRAME_INPUTS = [{"name": "measurements", "datatype": "FP64", "shape": [-1, 4],
                 "features": ["alcohol", "malic_acid", "ash", "alcalinity"]},
                {"name": "cellar", "datatype": "BYTES", "shape": [-1]}]


def test_a_dataframe_pipeline_is_served_from_its_joblib_file_with_no_wrapper(tmp_path, adapter_factory):
    pipeline, frame = write_pipeline_package(tmp_path / "wine", FRAME_INPUTS)
    adapter = adapter_factory(tmp_path / "wine")
    client = triton.InferenceServerClient(adapter.address)
    measurements = frame[["alcohol", "malic_acid", "ash", "alcalinity"]].to_numpy()[:25]
    cellars = frame["cellar"].to_numpy()[:25].astype(object)
    a = triton.InferInput("measurements", measurements.shape, "FP64")
    a.set_data_from_numpy(measurements)
    b = triton.InferInput("cellar", cellars.shape, "BYTES")
    b.set_data_from_numpy(np.array([c.encode() for c in cellars], dtype=object))
    answer = client.infer("wine", [a, b])
    assert answer.as_numpy("label").tolist() == pipeline.predict(frame.iloc[:25]).tolist()
    assert np.allclose(answer.as_numpy("probabilities"), pipeline.predict_proba(frame.iloc[:25]))


def test_a_column_the_pipeline_was_fitted_on_but_no_input_gives_is_refused_by_name_at_check(tmp_path):
    inputs = [{"name": "measurements", "datatype": "FP64", "shape": [-1, 4],
               "features": ["alcohol", "malic_acid", "ash", "alkalinity"]},  # misspelled
              {"name": "cellar", "datatype": "BYTES", "shape": [-1]}]
    write_pipeline_package(tmp_path / "wine", inputs)
    result = subprocess.run(meshserve_argv("check", str(tmp_path / "wine")), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "alcalinity" in result.stderr and "field 'signature.inputs'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_1d_input_to_a_2d_estimator_is_caught_by_check(tmp_path):
    data = load_iris()
    folder = tmp_path / "iris"
    folder.mkdir()
    joblib.dump(LogisticRegression(max_iter=300).fit(data.data, data.target), folder / "model.joblib")
    (folder / "model.yaml").write_text(yaml.safe_dump({
        "name": "iris-lr", "version": "1", "runtime": "python", "entrypoint": "model.joblib",
        "signature": {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}],
                      "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}]}}))
    result = subprocess.run(meshserve_argv("check", str(folder)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "signature.inputs[0].shape" in result.stderr and "[-1, 4]" in result.stderr


def write_onnx_package(folder, inputs, outputs):
    from skl2onnx import to_onnx

    data = load_iris()
    model = LogisticRegression(max_iter=300).fit(data.data.astype(np.float32), data.target)
    onnx = to_onnx(model, data.data[:1].astype(np.float32), target_opset=17, options={"zipmap": False})
    folder.mkdir()
    (folder / "model.onnx").write_bytes(onnx.SerializeToString())
    (folder / "model.yaml").write_text(yaml.safe_dump({
        "name": "iris-onnx", "version": "1", "runtime": "python", "entrypoint": "model.onnx",
        "signature": {"inputs": inputs, "outputs": outputs}}))
    return model, data


ONNX_OUTPUTS = [{"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]


def test_an_onnx_model_is_served_through_onnxruntime(tmp_path, adapter_factory):
    model, data = write_onnx_package(tmp_path / "onnx", [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}],
                                     ONNX_OUTPUTS)
    adapter = adapter_factory(tmp_path / "onnx")
    client = triton.InferenceServerClient(adapter.address)
    rows = data.data[::10].astype(np.float32)
    x = triton.InferInput("X", rows.shape, "FP32")
    x.set_data_from_numpy(rows)
    answer = client.infer("iris-onnx", [x])
    assert answer.as_numpy("label").tolist() == model.predict(rows).tolist()
    assert np.allclose(answer.as_numpy("probabilities"), model.predict_proba(rows), atol=1e-5)


@pytest.mark.parametrize("inputs, outputs, field, words", [
    ([{"name": "features", "datatype": "FP32", "shape": [-1, 4]}], ONNX_OUTPUTS, "signature.inputs",
     "the ONNX graph takes X"),
    ([{"name": "X", "datatype": "FP64", "shape": [-1, 4]}], ONNX_OUTPUTS, "signature.inputs[0].datatype",
     "tensor(float)"),
    ([{"name": "X", "datatype": "FP32", "shape": [-1, 5]}], ONNX_OUTPUTS, "signature.inputs[0].shape", "[-1, 4]"),
    ([{"name": "X", "datatype": "FP32", "shape": [-1, 4]}], ONNX_OUTPUTS[:1] + [
        {"name": "scores", "datatype": "FP32", "shape": [-1, 3]}], "signature.outputs[1].name", "no output 'scores'"),
], ids=["input-name", "datatype", "shape", "output-name"])
def test_an_onnx_signature_that_disagrees_with_the_graph_is_refused_at_check(tmp_path, inputs, outputs, field, words):
    write_onnx_package(tmp_path / "onnx", inputs, outputs)
    result = subprocess.run(meshserve_argv("check", str(tmp_path / "onnx")), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout
    assert f"field '{field}'" in result.stderr and words in result.stderr, result.stderr


def test_a_model_answering_fewer_rows_than_it_was_given_is_an_error_naming_the_output(tmp_path, adapter_factory):
    folder = tmp_path / "short"
    folder.mkdir()
    (folder / "short.py").write_text("def predict(inputs):\n    return {'y': inputs['x'][:1] * 2}\n")
    (folder / "model.yaml").write_text(yaml.safe_dump({
        "name": "short", "version": "1", "runtime": "python", "entrypoint": "short:predict",
        "signature": {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}],
                      "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1, 2]}]}}))
    adapter = adapter_factory(folder)
    client = triton.InferenceServerClient(adapter.address)
    x = triton.InferInput("x", [3, 2], "FP64")
    x.set_data_from_numpy(np.ones((3, 2)))
    with pytest.raises(triton.InferenceServerException) as caught:
        client.infer("short", [x])
    assert "INTERNAL" in str(caught.value.status())
    assert "output 'y'" in caught.value.message() and "1 rows for 3 input rows" in caught.value.message()
