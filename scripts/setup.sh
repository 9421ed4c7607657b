#!/usr/bin/env bash
# Set up everything meshserve needs on a fresh Debian/Ubuntu machine. Safe to re-run: each
# step skips what is already in place. Parts live in scripts/setup.d/, run in name order.
set -euo pipefail
cd "$(dirname "$0")/.."
export MESHSERVE_ROOT="$PWD"
export MESHSERVE_VENV="${MESHSERVE_VENV:-$PWD/.venv}"
export PY="$MESHSERVE_VENV/bin/python"

for part in scripts/setup.d/*.sh; do
    echo "==> setup: ${part#scripts/setup.d/}"
    bash "$part"
done
echo "==> setup done (virtual environment: $MESHSERVE_VENV)"
