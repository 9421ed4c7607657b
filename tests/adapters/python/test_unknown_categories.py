"""A category a Python model never saw is the client's mistake: INVALID_ARGUMENT naming the input,
the column and the value, as R answers an unknown factor level; never the model's INTERNAL error.
A model that fails on its own (a ValueError about nothing the request holds) stays INTERNAL."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

REGIONS = ["north", "south", "east"]


def loans_frame() -> tuple[pd.DataFrame, np.ndarray]:
    rows = 60
    frame = pd.DataFrame({"region": [REGIONS[i % 3] for i in range(rows)],
                          "income": np.linspace(20.0, 90.0, rows), "age": np.linspace(18.0, 70.0, rows)[::-1]})
    return frame, (np.arange(rows) % 2 == 0).astype(np.int64)


def write_package(folder, entrypoint: str, inputs: list[dict], outputs: list[dict], **extra) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump({
        "name": "loans", "version": "1", "runtime": "python", "entrypoint": entrypoint,
        "signature": {"inputs": inputs, "outputs": outputs}, **extra}))


FRAME_INPUTS = [{"name": "region", "datatype": "BYTES", "shape": [-1]},
                {"name": "numbers", "datatype": "FP64", "shape": [-1, 2], "features": ["income", "age"]}]
LABEL = [{"name": "label", "datatype": "INT64", "shape": [-1]}]


def onehot_pipeline(classifier) -> Pipeline:
    frame, target = loans_frame()
    return Pipeline([
        ("columns", ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="error"), ["region"])],
                                      remainder="passthrough")),
        ("classify", classifier),
    ]).fit(frame, target)


def infer(address: str, model: str, tensors: dict[str, tuple[np.ndarray, str]]):
    client = triton.InferenceServerClient(address)
    sent = []
    for name, (array, datatype) in tensors.items():
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        sent.append(tensor)
    return client.infer(model, sent)


def refusal(address: str, model: str, tensors) -> triton.InferenceServerException:
    with pytest.raises(triton.InferenceServerException) as caught:
        infer(address, model, tensors)
    return caught.value


def frame_request(regions: list[str]):
    numbers = np.array([[40.0, 30.0]] * len(regions))
    return {"region": (np.array([r.encode() for r in regions], dtype=object), "BYTES"), "numbers": (numbers, "FP64")}


def test_a_category_the_pipeline_never_saw_is_invalid_argument_naming_input_and_value(tmp_path, adapter_factory):
    pipeline = onehot_pipeline(HistGradientBoostingClassifier(max_iter=20))
    write_package(tmp_path / "loans", "model.joblib", FRAME_INPUTS, LABEL)
    joblib.dump(pipeline, tmp_path / "loans" / "model.joblib")
    adapter = adapter_factory(tmp_path / "loans")

    answer = infer(adapter.address, "loans", frame_request(["north", "east"]))
    assert answer.as_numpy("label").shape == (2,)
    error = refusal(adapter.address, "loans", frame_request(["north", "central"]))
    assert "INVALID_ARGUMENT" in str(error.status()), error.message()
    message = error.message()
    assert "input 'region'" in message and "'central'" in message and "row 1" in message, message
    assert "east, north, south" in message, "the refusal names the categories the model knows"


def test_the_onnx_form_of_the_pipeline_refuses_an_unknown_category_the_same_way(tmp_path, adapter_factory):
    pytest.importorskip("skl2onnx")
    pytest.importorskip("onnxruntime")
    from skl2onnx import to_onnx

    frame, _ = loans_frame()
    frame = frame.astype({"income": np.float32, "age": np.float32})
    pipeline = onehot_pipeline(LogisticRegression(max_iter=300))
    onnx = to_onnx(pipeline, frame[:1], target_opset=17, options={"zipmap": False})
    write_package(tmp_path / "onnx", "model.onnx",
                  [{"name": "region", "datatype": "BYTES", "shape": [-1, 1]},
                   {"name": "income", "datatype": "FP32", "shape": [-1, 1]},
                   {"name": "age", "datatype": "FP32", "shape": [-1, 1]}], LABEL)
    (tmp_path / "onnx" / "model.onnx").write_bytes(onnx.SerializeToString())
    adapter = adapter_factory(tmp_path / "onnx")

    def request(region: str):
        return {"region": (np.array([[region.encode()]], dtype=object), "BYTES"),
                "income": (np.array([[40.0]], dtype=np.float32), "FP32"),
                "age": (np.array([[30.0]], dtype=np.float32), "FP32")}

    assert infer(adapter.address, "loans", request("south")).as_numpy("label").shape == (1,)
    error = refusal(adapter.address, "loans", request("central"))
    assert "INVALID_ARGUMENT" in str(error.status()), error.message()
    assert "input 'region'" in error.message() and "'central'" in error.message(), error.message()


MODULE = '''
import joblib, numpy as np, pandas as pd
from pathlib import Path

PIPELINE = joblib.load(Path(__file__).parent / "pipeline.joblib")


def predict(inputs):
    regions = [v.decode() for v in inputs["region"]]
    if regions[0] == "boom":
        raise ValueError("operands could not be broadcast together with shapes (3,) (4,)")
    frame = pd.DataFrame({"region": regions, "income": inputs["numbers"][:, 0], "age": inputs["numbers"][:, 1]})
    return PIPELINE.predict(frame)
'''


def test_categories_model_yaml_declares_are_checked_before_the_model_runs(tmp_path, adapter_factory):
    """A team's own function around a pipeline: the categories model.yaml declares are checked before it runs."""
    folder = tmp_path / "wrapped"
    inputs = [dict(FRAME_INPUTS[0], limits={"region": {"categories": ["north", "south"]}}), FRAME_INPUTS[1]]
    write_package(folder, "wrapped:predict", inputs, LABEL)
    joblib.dump(onehot_pipeline(LogisticRegression(max_iter=300)), folder / "pipeline.joblib")
    (folder / "wrapped.py").write_text(MODULE)
    adapter = adapter_factory(folder)

    declared = refusal(adapter.address, "loans", frame_request(["west"]))
    assert "INVALID_ARGUMENT" in str(declared.status())
    assert "input 'region'" in declared.message() and "'west'" in declared.message()
    assert "model.yaml limits" in declared.message(), declared.message()

    assert infer(adapter.address, "loans", frame_request(["south"])).as_numpy("label").shape == (1,)


def test_a_refusal_inside_the_model_naming_a_request_value_is_invalid_argument_and_a_bug_stays_internal(
        tmp_path, adapter_factory):
    """Nothing declared and nothing learnt at load (the pipeline is inside the team's function): scikit-learn's
    own refusal names a value the request holds, so it is the client's; a ValueError about nothing the
    request holds is the model's bug."""
    folder = tmp_path / "wrapped"
    write_package(folder, "wrapped:predict", FRAME_INPUTS, LABEL)
    joblib.dump(onehot_pipeline(LogisticRegression(max_iter=300)), folder / "pipeline.joblib")
    (folder / "wrapped.py").write_text(MODULE)
    adapter = adapter_factory(folder)

    error = refusal(adapter.address, "loans", frame_request(["north", "central"]))
    assert "INVALID_ARGUMENT" in str(error.status()), error.message()
    assert "input 'region'" in error.message() and "'central'" in error.message(), error.message()
    assert "row 1" in error.message()

    bug = refusal(adapter.address, "loans", frame_request(["boom"]))
    assert "INTERNAL" in str(bug.status()) and "could not be broadcast" in bug.message(), bug.message()
