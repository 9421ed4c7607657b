"""A small real disk for fault tests: a tmpfs mounted for one test, and a way to fill it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(parent: Path, size: str) -> Iterator[Path]:
    """A tmpfs of SIZE at PARENT/disk, unmounted (with whatever a test mounted over its folders)
    afterwards; the test is skipped, with the reason, where this process may not mount."""
    disk = parent / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); needs root or CAP_SYS_ADMIN")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-R", "--lazy", str(disk)], capture_output=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses; deleting it frees the space again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler
