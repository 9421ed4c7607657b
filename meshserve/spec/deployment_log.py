"""The deployment log: every live change to what serves traffic, and every change the control API
was asked to make (applied or refused), with when, what, why and by whom.

It is append-only and lives in the mesh's run directory (`RunFolder.deployment_log`, mode
600), so "who moved traffic to version 2, and when, and why" has an answer. Each line is written
with one `write` on a file opened for appending, so lines from concurrent writers never
interleave, and it is on disk before the change is reported done.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from meshserve.core.errors import quoted
from meshserve.core.mesh_protocol import PEER_HEADER, PRINCIPAL_HEADER, Metadata


REASON_HEADER = "x-meshserve-reason"  # why the caller makes a change, in its own words (the console asks)


def caller_of(metadata: Metadata, peer: str) -> dict[str, str]:
    """Who is calling: the principal and the address Envoy's front listener stamped, else the
    direct peer (a caller on the router's own loopback port), and why when the caller said so."""
    found = {key: value for key, value in metadata or () if key in (PRINCIPAL_HEADER, PEER_HEADER, REASON_HEADER)}
    caller = {"principal": quoted(found.get(PRINCIPAL_HEADER, "local"), 256),
              "peer": quoted(found.get(PEER_HEADER, peer), 256)}
    if isinstance(found.get(REASON_HEADER), str) and found[REASON_HEADER].strip():
        caller["why"] = quoted(found[REASON_HEADER].strip(), 500)
    return caller


class DeploymentLog:
    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None

    def _write(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **entry}
        if self.path is None:
            return entry
        line = (json.dumps(entry, sort_keys=False) + "\n").encode()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return entry

    def append(self, caller: dict[str, str], action: str, result: str, **details: Any) -> dict[str, Any]:
        """A control-API call, applied or refused, with who made it."""
        by = f"{caller.get('principal', 'local')} from {caller.get('peer', '?')}"
        return self._write({**caller, "action": action, "result": result, "by": by, **details})

    def change(self, model: str, what: str, why: str, by: str, **details: Any) -> dict[str, Any]:
        """A live change made by the mesh itself or by hand (a rollout plan's step, a rollback)."""
        return self._write({"model": model, "what": what, "why": why, "by": by, **details})

    def entries(self, model: str | None = None) -> list[dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return []
        found = [json.loads(line) for line in self.path.read_text().splitlines() if line]
        return [e for e in found if model is None or e.get("model") == model]
