#!/usr/bin/env bash
# Set up, then run the benchmarks: every bench/bench_*.py, or those named (e.g. `router r`).
# Figures are ratios against a baseline measured in the same run; see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ $# -eq 0 ]; then set -- $(ls bench/bench_*.py | sed 's|bench/bench_||; s|\.py$||'); fi
for name in "$@"; do
    echo "==> bench: $name"
    .venv/bin/python "bench/bench_$name.py"
done
