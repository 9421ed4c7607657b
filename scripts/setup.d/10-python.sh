#!/usr/bin/env bash
# The project's virtual environment with meshserve installed in editable mode.
set -euo pipefail
if [ ! -x "$PY" ]; then
    python3 -m venv "$MESHSERVE_VENV"
    "$PY" -m pip install -q --upgrade pip
fi
# Re-install only when pyproject.toml changed since the last install.
stamp="$MESHSERVE_VENV/.meshserve-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "    pip install -e .[dev,java,onnx] (about a minute on a fresh machine)"
    "$PY" -m pip install -q -e ".[dev,java,onnx]" 2>&1 | { grep -v "^WARNING: Location" || true; }
    "$PY" -m pip check
    touch "$stamp"
fi
