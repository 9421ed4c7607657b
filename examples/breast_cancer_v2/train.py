"""Train version 2 of the breast-cancer model: a random forest on the same data.

    python examples/breast_cancer_v2/train.py   # writes model.joblib and baseline.json beside this file
"""

from pathlib import Path

import joblib
from meshserve.sidecars.drift.package_baseline import write_package_baseline
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent


def main() -> None:
    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target)
    model = RandomForestClassifier(n_estimators=50, random_state=0, n_jobs=1).fit(x_train, y_train)
    joblib.dump(model, HERE / "model.joblib")
    # The drift monitor compares live requests with the rows the model learned from.
    columns = {name: x_train[:, j].tolist() for j, name in enumerate(data.feature_names)}
    write_package_baseline(HERE, columns, source="load_breast_cancer() training split")
    print(f"breast_cancer_v2: trained RandomForestClassifier, test accuracy {model.score(x_test, y_test):.3f}")


if __name__ == "__main__":
    main()
