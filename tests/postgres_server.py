"""A throwaway PostgreSQL server for tests: Debian's binaries, a temporary data folder, a free port.

initdb refuses to run as root, so as root the server runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from meshserve.core.ports import free_port


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    def __init__(self):
        binaries = postgres_bin()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed (scripts/setup.d/60-records.sh installs it)")
        self.bin = binaries
        self.root = Path(tempfile.mkdtemp(prefix="meshserve-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.process: subprocess.Popen | None = None

    def _run_as_owner(self, argv: list[str], **kwargs):
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        return prefix + argv, kwargs

    def start(self) -> "PostgresServer":
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        argv, _ = self._run_as_owner([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                                      "--auth=trust", "-E", "UTF8"])
        subprocess.run(argv, check=True, capture_output=True, timeout=120)
        argv, _ = self._run_as_owner([str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                                      "-k", str(self.root), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.process.stderr.read().decode(errors='replace')}")
            time.sleep(0.1)
        raise RuntimeError("postgres did not accept connections within 30 s")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)
