"""Shared fixtures: real meshserve processes (adapters, the whole mesh) on free local ports."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


class RunningProcess:
    """A started meshserve process whose output is collected line by line."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT):
        self.argv = argv
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        threading.Thread(target=self._read, daemon=True).start()
        self.address: str | None = None
        self.rest_address: str | None = None  # an adapter's REST listener, when started with one

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        """Wait until an output line (from index `start`) matches; fail with the output so far."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[start:]:
                    match = regex.search(line)
                    if match:
                        return match
                if self.proc.poll() is not None and not self._changed.wait(0.2):
                    raise AssertionError(f"process exited ({self.proc.returncode}) before printing /{pattern}/:\n{self.output}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no line matching /{pattern}/ within {timeout} s:\n{self.output}")
                self._changed.wait(min(remaining, 0.5))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait_for(condition, timeout: float, what: str, every_s: float = 0.3):
    """Poll CONDITION() until it returns something true, and return that; fail naming WHAT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"not within {timeout} s: {what}")


def meshserve_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "meshserve.cli", *args]


from meshserve.core.ports import free_port  # noqa: E402  (re-exported for the tests)


def start_adapter(package_dir: str | Path, env: dict[str, str] | None = None, timeout: float = 120,
                  rest: bool = False, started: list[RunningProcess] | None = None) -> RunningProcess:
    """`meshserve adapter PACKAGE` on a free port, with REST its REST listener on another; STARTED
    collects it before it is ready, so a caller can stop one that never became ready."""
    address = f"127.0.0.1:{free_port()}"
    rest_address = f"127.0.0.1:{free_port()}" if rest else None
    argv = meshserve_argv("adapter", str(package_dir), "--listen", address,
                          *(("--rest-listen", rest_address) if rest_address else ()))
    process = RunningProcess(argv, env=env)
    if started is not None:
        started.append(process)
    process.wait_for_line(r"meshserve adapter ready", timeout)
    process.address, process.rest_address = address, rest_address
    return process


@pytest.fixture
def adapter_factory():
    """Start `meshserve adapter PACKAGE` on a free port (rest=True: its REST listener on another);
    stopped after the test."""
    started: list[RunningProcess] = []

    def start(package_dir: str | Path, env: dict[str, str] | None = None, timeout: float = 120,
              rest: bool = False) -> RunningProcess:
        return start_adapter(package_dir, env, timeout, rest, started)

    yield start
    for process in started:
        process.stop()


def start_mesh(models_dir: str | Path, *extra_args: str, env: dict[str, str] | None = None,
               timeout: float = 180) -> RunningProcess:
    process = RunningProcess(meshserve_argv("up", str(models_dir), "--listen", "127.0.0.1:0", *extra_args), env=env)
    match = process.wait_for_line(r"clients connect to (\S+)", timeout)
    process.address = match.group(1)
    return process


@pytest.fixture
def mesh_factory():
    """Start `meshserve up MODELS_DIR` on a free port; stopped after the test."""
    started: list[RunningProcess] = []

    def start(models_dir: str | Path, *extra_args: str, env: dict[str, str] | None = None,
              timeout: float = 180) -> RunningProcess:
        process = start_mesh(models_dir, *extra_args, env=env, timeout=timeout)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def python_examples(tmp_path_factory) -> Path:
    """A folder holding just the bundled Python example packages (links to them)."""
    folder = tmp_path_factory.mktemp("python-examples")
    for name in ("breast_cancer", "iris_species"):
        (folder / name).symlink_to(EXAMPLES / name, target_is_directory=True)
    return folder


@pytest.fixture(scope="session")
def python_mesh(python_examples):
    """One mesh over the Python examples, shared by the tests that only read from it."""
    process = start_mesh(python_examples)
    yield process
    process.stop()
