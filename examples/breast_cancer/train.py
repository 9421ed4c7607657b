"""Train the breast-cancer classifier this package serves (scikit-learn's bundled data).

    python examples/breast_cancer/train.py   # writes model.joblib beside this file
"""

from pathlib import Path

import joblib
import yaml
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
    print(f"breast_cancer: trained GradientBoostingClassifier, test accuracy {model.score(x_test, y_test):.3f}")


if __name__ == "__main__":
    main()
