#!/usr/bin/env bash
# Prediction records: SQLite is built into Python; PostgreSQL's server is installed for the tests
# of the PostgreSQL store (tests start their own server in a temporary folder; nothing runs as a service).
set -euo pipefail
bash scripts/apt-install.sh postgresql
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/postgres" ]; then
    echo "    PostgreSQL's server binaries were not found under /usr/lib/postgresql/*/bin" >&2
    exit 1
fi
echo "    postgresql: $("$pg_bin/postgres" --version) ok"
