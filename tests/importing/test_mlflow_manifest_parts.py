"""What `meshserve import` reads from an MLflow model's own files (MLmodel, requirements.txt, conda.yaml),
as MLflow 3 writes them: the signature, the pins and the flavour, each refusal one line with the fix."""

from __future__ import annotations

import json

import pytest

from meshserve.core.model_package import Signature
from meshserve.importing.mlflow_package import flavour_of
from meshserve.importing.mlflow_requirements import MLFLOW_ITSELF, model_requirements, python_version
from meshserve.importing.mlflow_signature import signature_from_mlmodel
from meshserve.importing.model_uri import ImportFailure, parse_model_uri

COLUMNS = [{"type": "double", "name": n, "required": True} for n in ("sepal length (cm)", "petal width (cm)")]


def mlmodel(inputs, outputs):
    return {"signature": {"inputs": json.dumps(inputs), "outputs": json.dumps(outputs), "params": None}}


def test_numeric_columns_become_one_input_with_features_and_an_unnamed_output_is_predictions():
    signature = signature_from_mlmodel(mlmodel(COLUMNS, [{"type": "tensor", "tensor-spec": {"dtype": "int64",
                                                                                           "shape": [-1]}}]), "m")
    assert signature == {"inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 2],
                                     "features": ["sepal length (cm)", "petal width (cm)"]}],
                         "outputs": [{"name": "predictions", "datatype": "INT64", "shape": [-1]}]}
    Signature.model_validate(signature)  # what model.yaml accepts


def test_mixed_columns_become_one_input_per_column():
    columns = [{"type": "string", "name": "colour"}, {"type": "long", "name": "age"}, {"type": "double", "name": "x"}]
    signature = signature_from_mlmodel(mlmodel(columns, [{"type": "double"}]), "m")
    assert signature["inputs"] == [{"name": "colour", "datatype": "BYTES", "shape": [-1]},
                                   {"name": "age", "datatype": "INT64", "shape": [-1]},
                                   {"name": "x", "datatype": "FP64", "shape": [-1]}]
    assert signature["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]


def test_tensors_keep_their_dtype_and_shape():
    tensor = {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 28, 28]}}
    signature = signature_from_mlmodel(mlmodel([tensor], [{"type": "tensor", "name": "scores",
                                                          "tensor-spec": {"dtype": "float32", "shape": [-1, 10]}}]), "m")
    assert signature["inputs"] == [{"name": "inputs", "datatype": "FP32", "shape": [-1, 28, 28]}]
    assert signature["outputs"] == [{"name": "scores", "datatype": "FP32", "shape": [-1, 10]}]


def test_a_type_meshserve_cannot_carry_is_named_with_the_fix():
    with pytest.raises(ImportFailure, match=r"input column 'when' has MLflow type datetime.*--signature FILE"):
        signature_from_mlmodel(mlmodel([{"type": "datetime", "name": "when"}], [{"type": "double"}]), "m")


def test_no_signature_says_how_to_log_one():
    with pytest.raises(ImportFailure, match=r"models:/m/1 was logged without a signature.*infer_signature"):
        signature_from_mlmodel({}, "models:/m/1")


def test_requirements_are_pinned_from_conda_yaml_or_refused_by_line(tmp_path):
    (tmp_path / "requirements.txt").write_text("mlflow==3.17.2\nnumpy==2.4.6\nscikit-learn\ncloudpickle\n")
    (tmp_path / "conda.yaml").write_text("dependencies:\n- python=3.11.7\n- pip:\n  - scikit-learn==1.9.1\n")
    (tmp_path / "python_env.yaml").write_text("python: 3.11.7\ndependencies:\n- -r requirements.txt\n")
    with pytest.raises(ImportFailure, match=r"line 4 'cloudpickle' is not pinned and neither conda.yaml nor "
                                            r"python_env.yaml records its version") as refused:
        model_requirements(tmp_path)
    assert "line 3" not in str(refused.value)
    (tmp_path / "requirements.txt").write_text("mlflow==3.17.2\nnumpy==2.4.6\nscikit-learn\n")
    assert model_requirements(tmp_path) == ["mlflow==3.17.2", "numpy==2.4.6", "scikit-learn==1.9.1"]
    assert model_requirements(tmp_path, drop=MLFLOW_ITSELF) == ["numpy==2.4.6", "scikit-learn==1.9.1"]
    assert python_version(tmp_path, {}) == "3.11.7"


def test_only_the_sklearn_and_pyfunc_flavours_are_imported():
    assert flavour_of({"flavors": {"python_function": {"loader_module": "mlflow.sklearn"}, "sklearn": {}}}, "m") == "sklearn"
    assert flavour_of({"flavors": {"python_function": {"loader_module": "mlflow.pyfunc.model"}}}, "m") == "pyfunc"
    with pytest.raises(ImportFailure, match=r"m is a model of flavour xgboost.*mlflow.pyfunc.log_model"):
        flavour_of({"flavors": {"python_function": {"loader_module": "mlflow.xgboost"}, "xgboost": {}}}, "m")


@pytest.mark.parametrize("text, parsed", [("models:/iris/3", ("iris", "3", None)),
                                          ("models:/iris@champion", ("iris", None, "champion"))])
def test_model_uris(text, parsed):
    uri = parse_model_uri(text)
    assert (uri.name, uri.version, uri.alias) == parsed and str(uri) == text
