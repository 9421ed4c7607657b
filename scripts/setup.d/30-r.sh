#!/usr/bin/env bash
# The R runtime: Debian's R with the packages the example models need, rpy2 pinned to a
# release that works with Debian's R 4.2 (newer rpy2 fails with `undefined symbol: R_getVar`),
# and the example models trained from data that ships with R.
set -euo pipefail
cd "$MESHSERVE_ROOT"

bash scripts/apt-install.sh r-base-core r-base-dev r-cran-randomforest r-cran-ranger r-cran-plumber

# rpy2 builds its C extension against the installed R; r-base-dev provides the headers.
if ! "$PY" -c "import rpy2, sys; sys.exit(rpy2.__version__ != '3.5.17')" 2>/dev/null; then
    echo "    pip install rpy2==3.5.17 (compiles against R, about a minute)"
    "$PY" -m pip install -q "rpy2==3.5.17" 2>&1 | { grep -v "^WARNING: Location" || true; }
fi

# Train each R example whose saved model is missing (model files are not committed).
for train in examples/r_*/train.R; do
    [ -f "$train" ] || continue
    dir=$(dirname "$train")
    if [ ! -f "$dir/model.rds" ] || [ "$train" -nt "$dir/model.rds" ]; then
        echo "    training $dir (Rscript train.R)"
        (cd "$dir" && Rscript --vanilla train.R >/dev/null)
    fi
done
