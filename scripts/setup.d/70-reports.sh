#!/usr/bin/env bash
# HTML reports (quality, comparison, drift) are checked the way people see them: rendered by a real
# browser. Headless Chromium from Debian takes the screenshots in the tests.
set -euo pipefail
bash scripts/apt-install.sh chromium
echo "    chromium: $(chromium --version 2>/dev/null | head -1) ok"
