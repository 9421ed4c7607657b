#!/usr/bin/env bash
# Triton's perf_analyzer, to load-test the mesh with Triton's own tool (docs/rest.md). Newer wheels
# need glibc 2.38; the binary in tritonclient 2.41.1 runs here. It goes into its own folder so the
# environment's tritonclient (2.73) stays as it is, and finds libb64 and libcudart in the copies
# nvidia-pytriton ships (under hashed names: linked here under the names the binary asks for).
set -euo pipefail
cd "$MESHSERVE_ROOT"
target="$MESHSERVE_VENV/perf-analyzer"
if [ ! -x "$target/bin/perf_analyzer" ]; then
    echo "    pip install --target $target tritonclient==2.41.1 (perf_analyzer only)"
    "$PY" -m pip install -q --no-deps --target "$target" "tritonclient==2.41.1" 2>&1 | { grep -v "^WARNING: Location" || true; }
fi
libs="$("$PY" -c 'from meshserve.adapters.triton.triton_env import pytriton_libs; print(pytriton_libs() or "")')"
mkdir -p "$target/lib"
for wanted in libb64.so.0d libcudart.so.12; do
    found=$(ls "$libs"/"${wanted%%.so*}"-*.so* 2>/dev/null | head -1)
    if [ -z "$found" ]; then
        echo "    perf_analyzer: $wanted not found in $libs; it will not run (the REST/gRPC load tests skip)"
        continue
    fi
    ln -sfn "$found" "$target/lib/$wanted"
done
if LD_LIBRARY_PATH="$target/lib" "$target/bin/perf_analyzer" --help 2>&1 | grep SYNOPSIS >/dev/null; then
    echo "    perf_analyzer ready: LD_LIBRARY_PATH=$target/lib $target/bin/perf_analyzer"
fi
