"""Where a model came from: the revision of the code that trained it."""

from __future__ import annotations

import subprocess
from pathlib import Path


def code_revision(directory: Path) -> str | None:
    """`git rev-parse HEAD` of the work tree holding DIRECTORY, with `-dirty` when that tree has
    uncommitted changes; None outside a git work tree (or without git)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, check=False)

    try:
        head = git("rev-parse", "HEAD")
    except OSError:
        return None
    if head.returncode != 0:
        return None
    changes = git("status", "--porcelain", "--untracked-files=normal")
    dirty = changes.returncode == 0 and bool(changes.stdout.strip())
    return head.stdout.strip() + ("-dirty" if dirty else "")
