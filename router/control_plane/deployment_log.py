"""The deployment log: every live change to what serves traffic, with when, what, why and by whom.

One JSON object per line in the mesh's run folder, appended and flushed as each change is
made, so it reads in order and survives a crash of the process that wrote it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class DeploymentLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, model: str, what: str, why: str, by: str, **details: Any) -> dict[str, Any]:
        entry = {"time": time.time(), "model": model, "what": what, "why": why, "by": by, **details}
        line = json.dumps(entry, sort_keys=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        return entry

    def entries(self, model: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        found = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [e for e in found if model is None or e["model"] == model]
