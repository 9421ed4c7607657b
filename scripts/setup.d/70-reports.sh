#!/usr/bin/env bash
# HTML reports (quality, comparison, drift) are checked the way people see them: rendered by a real
# browser. Headless Chromium from Debian takes the screenshots in the tests.
set -euo pipefail
bash scripts/apt-install.sh chromium
echo "    chromium: $(chromium --version 2>/dev/null | head -1) ok"
# The console's browser tests drive that same Chromium with Playwright (pip, in the dev extras);
# Playwright's own browser download is never used.
"${PY:-.venv/bin/python}" -c "import playwright" 2>/dev/null && echo "    playwright: ok (drives /usr/bin/chromium)" \
  || echo "    playwright: missing; pip install -e '.[dev]' adds it"
