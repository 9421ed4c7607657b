#!/usr/bin/env bash
# Triton's perf_analyzer, to load-test the mesh as Triton users do (docs/compatibility.md).
# Newer tritonclient wheels carry a perf_analyzer that needs glibc 2.38; the one in the 2.41.1
# wheel runs on Debian 12. It goes into a folder of its own (pip --target), so the environment
# keeps its newer tritonclient. The binary finds libb64 and libcudart in nvidia-pytriton's
# bundled libraries (installed by 50-triton.sh) under mangled names, so $TARGET/lib links the names
# it asks for; run it with LD_LIBRARY_PATH=$TARGET/lib (tests/perf_analyzer.py does).
set -euo pipefail
cd "$MESHSERVE_ROOT"

TARGET="$MESHSERVE_VENV/opt/tritonclient-2.41.1"
if [ ! -x "$TARGET/bin/perf_analyzer" ]; then
    echo "    pip install --target $TARGET tritonclient==2.41.1 (perf_analyzer, about 12 MB)"
    "$PY" -m pip install -q --no-deps --target "$TARGET" "tritonclient==2.41.1" 2>&1 \
        | { grep -v "^WARNING: Location" || true; }
fi
LIBS="$("$PY" -c 'from meshserve.adapters.triton.triton_env import pytriton_libs; print(pytriton_libs() or "")')"
mkdir -p "$TARGET/lib"
for wanted in libb64.so.0d:libb64- libcudart.so.12:libcudart-; do
    found="$(ls "$LIBS"/"${wanted#*:}"* | head -1)"
    ln -sf "$found" "$TARGET/lib/${wanted%%:*}"
done
LD_LIBRARY_PATH="$TARGET/lib" "$TARGET/bin/perf_analyzer" --version >/dev/null 2>&1 \
    || { echo "perf_analyzer does not start: check 'LD_LIBRARY_PATH=$TARGET/lib ldd $TARGET/bin/perf_analyzer'" >&2; exit 1; }
echo "    perf_analyzer: LD_LIBRARY_PATH=$TARGET/lib $TARGET/bin/perf_analyzer"
