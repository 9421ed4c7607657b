"""The deployment log: one JSON line per change the control API was asked to make, applied or
refused, with who asked (the principal Envoy authenticated, else "local") and from where.

It is append-only and lives in the mesh's run directory (`RUN_DIR/deployment-log.jsonl`), so
"who moved traffic to version 2, and when" has an answer. Each line is written with one
`write` on a file opened for appending, so lines from concurrent calls never interleave.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from meshserve.core.errors import quoted
from meshserve.core.mesh_protocol import PEER_HEADER, PRINCIPAL_HEADER, Metadata

FILE_NAME = "deployment-log.jsonl"


def caller_of(metadata: Metadata, peer: str) -> dict[str, str]:
    """Who is calling: the principal and the address Envoy's front listener stamped, else the
    direct peer (a caller on the router's own loopback port)."""
    found = {key: value for key, value in metadata or () if key in (PRINCIPAL_HEADER, PEER_HEADER)}
    return {"principal": quoted(found.get(PRINCIPAL_HEADER, "local"), 256),
            "peer": quoted(found.get(PEER_HEADER, peer), 256)}


class DeploymentLog:
    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None

    def append(self, caller: dict[str, str], action: str, result: str, **details: Any) -> None:
        if self.path is None:
            return
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **caller, "action": action,
                 "result": result, **details}
        line = (json.dumps(entry, sort_keys=False) + "\n").encode()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)

    def entries(self) -> list[dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]
