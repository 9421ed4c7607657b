#!/usr/bin/env bash
# Node.js and the gRPC packages the cross-language client test uses.
set -euo pipefail
command -v node >/dev/null || bash scripts/apt-install.sh nodejs npm
if [ ! -d tests/node/node_modules/@grpc/grpc-js ] || [ tests/node/package-lock.json -nt tests/node/node_modules ]; then
    echo "    npm ci (tests/node)"
    (cd tests/node && npm ci --no-audit --no-fund --silent)
fi
