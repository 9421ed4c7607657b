#!/usr/bin/env bash
# The Triton runtime: the tritonserver binary comes inside the nvidia-pytriton wheel (extra `triton`,
# installed by 10-python.sh; it pins numpy<2, which the rest of meshserve keeps to). Here: prepare the
# Python-backend folder for this Python, check the binary finds every library it links against, and
# train the Triton example models whose weights are missing (weights are not committed).
set -euo pipefail
cd "$MESHSERVE_ROOT"

if ! "$PY" -c "import pytriton" 2>/dev/null; then
    echo "    pip install nvidia-pytriton==0.7.0 (the tritonserver binary, about 150 MB)"
    "$PY" -m pip install -q "nvidia-pytriton==0.7.0" 2>&1 | { grep -v "^WARNING: Location" || true; }
fi

"$PY" -m meshserve.adapters.triton.server --prepare --check | sed 's/^/    /'

# Each Triton example's train.py skips itself (--if-missing) when its weights are up to date.
for train in examples/triton_*/train.py; do
    [ -f "$train" ] || continue
    "$PY" "$train" --if-missing | sed 's/^/    trained: /'
done
