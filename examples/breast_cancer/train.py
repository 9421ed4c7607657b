"""Train the breast-cancer classifier this package serves (scikit-learn's bundled data).

    python examples/breast_cancer/train.py   # writes model.joblib and baseline.json beside this file
"""

from pathlib import Path

import joblib
import yaml
from meshserve.sidecars.drift.package_baseline import write_package_baseline
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent


def main() -> None:
    data = load_breast_cancer()
    manifest = yaml.safe_load((HERE / "model.yaml").read_text())
    declared = manifest["signature"]["inputs"][0]["features"]
    if declared != list(data.feature_names):
        raise SystemExit("model.yaml feature names differ from the training data's columns")
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target)
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0)
    model.fit(x_train, y_train)
    joblib.dump(model, HERE / "model.joblib")
    # The drift monitor compares live requests with the rows the model learned from.
    columns = {name: x_train[:, j].tolist() for j, name in enumerate(data.feature_names)}
    write_package_baseline(HERE, columns, source="load_breast_cancer() training split")
    print(f"breast_cancer: trained GradientBoostingClassifier, test accuracy {model.score(x_test, y_test):.3f}")


if __name__ == "__main__":
    main()
