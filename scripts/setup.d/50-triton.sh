#!/usr/bin/env bash
# The Triton runtime: the tritonserver binary comes inside the nvidia-pytriton wheel, which pins numpy<2,
# so it gets a virtual environment of its own (.venv-triton beside meshserve's; MESHSERVE_TRITON_ENV
# points elsewhere). Triton's Python backend runs models with that environment's Python, so what a
# Triton Python model imports goes there too. Then: prepare the Python-backend folder for that Python,
# check the binary finds every library it links against, and train the Triton example models whose
# weights are missing (weights are not committed).
set -euo pipefail
cd "$MESHSERVE_ROOT"

TRITON_ENV="${MESHSERVE_TRITON_ENV:-$(dirname "$MESHSERVE_VENV")/.venv-triton}"
if [ ! -x "$TRITON_ENV/bin/python" ]; then
    python3 -m venv "$TRITON_ENV"
fi
if ! "$TRITON_ENV/bin/python" -c "import pytriton" 2>/dev/null; then
    echo "    pip install nvidia-pytriton==0.7.0 into $TRITON_ENV (the tritonserver binary, about 150 MB)"
    "$TRITON_ENV/bin/python" -m pip install -q "nvidia-pytriton==0.7.0" 2>&1 | { grep -v "^WARNING: Location" || true; }
fi

MESHSERVE_TRITON_ENV="$TRITON_ENV" "$PY" -m meshserve.adapters.triton.server --prepare --check | sed 's/^/    /'

# Each Triton example's train.py skips itself (--if-missing) when its weights are up to date.
for train in examples/triton_*/train.py; do
    [ -f "$train" ] || continue
    "$PY" "$train" --if-missing | sed 's/^/    trained: /'
done
