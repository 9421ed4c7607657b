#!/usr/bin/env bash
# Prometheus, for the tests that scrape a running mesh through its file_sd targets file and
# check counts with PromQL. Debian's package; its service is not started (tests run their own).
set -euo pipefail
bash scripts/apt-install.sh prometheus
echo "    prometheus: $(prometheus --version 2>&1 | head -1 | awk '{print $3}') ok"
