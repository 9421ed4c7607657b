"""Train or score the iris model the environment tests serve; run by a training venv's own Python.

    python train_iris.py train PACKAGE_DIR VERSION   writes model.joblib and model.yaml
    python train_iris.py score PACKAGE_DIR           prints the model's answers to ROWS as JSON

The estimator keeps a numpy RandomState (random_state=RandomState(0)), so its pickle holds a
BitGenerator: what makes a model saved under numpy 2 unloadable under numpy 1.
"""

import json
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8]]

MANIFEST = """\
name: iris-env
version: "{version}"
runtime: python
entrypoint: model.joblib
python:
  methods: {{label: predict, probabilities: predict_proba}}
signature:
  inputs:
    - {{name: features, datatype: FP64, shape: [-1, 4]}}
  outputs:
    - {{name: label, datatype: INT64, shape: [-1]}}
    - {{name: probabilities, datatype: FP64, shape: [-1, 3]}}
"""


def train(directory: Path, version: str) -> None:
    data = load_iris()
    model = RandomForestClassifier(n_estimators=12, max_depth=3, random_state=np.random.RandomState(0))
    model.fit(data.data, data.target)
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, directory / "model.joblib")
    (directory / "model.yaml").write_text(MANIFEST.format(version=version))


def score(directory: Path) -> None:
    model = joblib.load(directory / "model.joblib")
    rows = np.array(ROWS, dtype=np.float64)
    print(json.dumps({"label": model.predict(rows).astype(np.int64).tolist(),
                      "probabilities": model.predict_proba(rows).tolist(),
                      "numpy": np.__version__}))


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(Path(sys.argv[2]), sys.argv[3])
    else:
        score(Path(sys.argv[2]))
