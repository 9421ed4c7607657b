#!/usr/bin/env bash
# MLflow. meshserve's environment gets MLflow's client (mlflow-skinny, the `mlflow` extra), which
# `meshserve import` reads the Model Registry with; it resolves with meshserve's pins (pip check below).
# The full MLflow (its tracking server, scikit-learn) lives in an environment of its own, .venv-mlflow
# beside meshserve's: the tests start a real `mlflow server` from it and train
# and register their models there, as a team keeping its models in MLflow would.
set -euo pipefail
cd "$MESHSERVE_ROOT"

if ! "$PY" -c "import mlflow" 2>/dev/null; then
    echo "    pip install mlflow-skinny into meshserve's environment (meshserve import)"
    "$PY" -m pip install -q "mlflow-skinny>=3.1,<4" 2>&1 | { grep -v "^WARNING: Location" || true; }
    "$PY" -m pip check
fi

MLFLOW_ENV="$(dirname "$MESHSERVE_VENV")/.venv-mlflow"
if [ ! -x "$MLFLOW_ENV/bin/python" ]; then
    python3 -m venv "$MLFLOW_ENV"
fi
if ! "$MLFLOW_ENV/bin/python" -c "import mlflow.server, sklearn" 2>/dev/null; then
    echo "    pip install mlflow scikit-learn into $MLFLOW_ENV (the tracking server, about 850 MB)"
    "$MLFLOW_ENV/bin/python" -m pip install -q "mlflow>=3.1,<4" scikit-learn 2>&1 | { grep -v "^WARNING: Location" || true; }
fi
echo "    mlflow: $("$MLFLOW_ENV/bin/python" -c 'import mlflow; print(mlflow.__version__)') in $MLFLOW_ENV ok"
