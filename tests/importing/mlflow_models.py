"""Register, alias and score models in a real MLflow tracking server; run by the MLflow environment's Python.

    python mlflow_models.py URI setup              registers iris 1 (logistic regression) and 2 (a decision
                                                   tree, skops with a trusted type), @champion on 1, the
                                                   pyfunc `sums` and `unsigned` (logged without a signature),
                                                   and prints their run ids and MLflow's own answers to ROWS

It prints one JSON line; one process does the whole set-up, since importing mlflow is slow. Models are trained on scikit-learn's bundled iris data with
fixed random_state, so their answers are the same on every run.
"""

import json
import sys

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8], [6.0, 2.2, 5.0, 1.5]]


class WeightedSum(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        weights = [0.5, -1.0, 2.0, 4.0]
        return sum(w * model_input[c] for w, c in zip(weights, model_input.columns))


def iris():
    return load_iris(return_X_y=True, as_frame=True)


def rows_frame():
    return pd.DataFrame(ROWS, columns=iris()[0].columns)


def register(model_log, name):
    with mlflow.start_run() as run:
        info = model_log(run)
    version = mlflow.MlflowClient().get_model_version(name, str(info.registered_model_version))
    return {"version": version.version, "run_id": run.info.run_id}


def score(name, version):
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    return [v.item() if hasattr(v, "item") else v for v in model.predict(rows_frame())]


def setup():
    X, y = iris()
    runs = {}
    for version, model, trusted in (("1", LogisticRegression(max_iter=500, random_state=0), None),
                                    ("2", DecisionTreeClassifier(max_depth=2, random_state=0), ["sklearn.tree._tree.Tree"])):
        model.fit(X, y)
        runs[version] = register(lambda run, model=model, trusted=trusted: mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(X, model.predict(X)), registered_model_name="iris",
            skops_trusted_types=trusted), "iris")
        assert runs[version]["version"] == version
    mlflow.MlflowClient().set_registered_model_alias("iris", "champion", "1")
    register(lambda run: mlflow.pyfunc.log_model(
        name="model", python_model=WeightedSum(), signature=infer_signature(X, WeightedSum().predict(None, X)),
        registered_model_name="sums"), "sums")
    unsigned = LogisticRegression(max_iter=500, random_state=0).fit(X.to_numpy(), y)
    register(lambda run: mlflow.sklearn.log_model(unsigned, name="model", registered_model_name="unsigned"), "unsigned")
    return {"runs": runs, "expected": {"iris": {v: score("iris", v) for v in ("1", "2")}, "sums": score("sums", "1")}}


def main(uri, command, *rest):
    mlflow.set_tracking_uri(uri)
    if command == "setup":
        out = setup()
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
