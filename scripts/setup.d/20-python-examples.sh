#!/usr/bin/env bash
# Train the bundled Python example models (only those not trained yet).
set -euo pipefail
[ -f examples/breast_cancer/model.joblib ] || "$PY" examples/breast_cancer/train.py
[ -f examples/iris_species/centroids.npz ] || "$PY" examples/iris_species/train.py
[ -f examples/breast_cancer_v2/model.joblib ] || "$PY" examples/breast_cancer_v2/train.py
