"""A model package loaded in a fresh adapter process, the way the mesh would serve it.

Golden examples are recorded and checked through it, so a missing R package, a misspelled
predict function or a forgotten dependency shows up here rather than as INTERNAL on every
request once the version is live. The adapter keeps no records and serves no metrics: it is
a rehearsal, not a replica.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from meshserve.core.mesh_protocol import ADAPTER_READY
from meshserve.core.mesh_secret import mesh_secret_metadata
from meshserve.core.ports import free_port
from meshserve.core.settings import get_settings, variable_for

# Settings a fresh adapter must not inherit from the process that starts it.
_NOT_INHERITED = (variable_for("records_dir"), variable_for("metrics_listen"))
_INTERNAL_TLS = variable_for("internal_tls_ca").removesuffix("CA")


_START = """
import os, sys
from meshserve.core.parent_death import die_with_parent
die_with_parent()
if os.getppid() != int(sys.argv[1]):
    sys.exit("meshserve: the process that started this adapter is gone")
from meshserve.adapters.server import main
sys.exit(main(sys.argv[2:]))
"""


class LoadFailed(Exception):
    """The adapter did not come up; the message is the reason it gave, OUTPUT its last lines
    (a traceback among them, which `meshserve --debug check` shows)."""

    def __init__(self, reason: str, output: list[str] | None = None):
        super().__init__(reason)
        self.output = output or []


def adapter_interpreter(package_dir: Path) -> str:
    """The Python a package's adapter runs with in the mesh: its own environment's when model.yaml
    records the model's requirements (built here on first use, as `meshserve up` would), else this one."""
    import asyncio

    from meshserve.core.errors import ManifestError
    from meshserve.core.model_package import load_package
    from meshserve.environments.builder import EnvironmentBuildError, package_interpreter

    try:
        return asyncio.run(package_interpreter(load_package(package_dir),
                                               lambda line: print(line, file=sys.stderr, flush=True)))
    except ManifestError:  # the adapter itself says what is wrong with the package
        return sys.executable
    except EnvironmentBuildError as exc:
        raise LoadFailed(str(exc)) from None


class FreshAdapter:
    """`with FreshAdapter(package_dir) as adapter: adapter.infer(model, version, inputs)`."""

    def __init__(self, package_dir: Path, timeout_s: float | None = None):
        self.package_dir = Path(package_dir)
        self.timeout_s = timeout_s or get_settings().gate_load_timeout_s
        self.address = f"127.0.0.1:{free_port()}"
        self._lines: deque[str] = deque(maxlen=200)
        self._ready = threading.Event()
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> FreshAdapter:
        # Plain gRPC on loopback, even inside a mesh whose processes speak mutual TLS.
        env = {k: v for k, v in os.environ.items()
               if k not in _NOT_INHERITED and not k.startswith(_INTERNAL_TLS)}
        env["PYTHONUNBUFFERED"] = "1"
        # No preexec_fn: forking (rather than spawning) from a process that runs gRPC servers runs
        # gRPC's fork handlers, which can kill the child before it starts. The child asks to die
        # with its parent itself, first thing.
        self._process = subprocess.Popen(
            [adapter_interpreter(self.package_dir), "-c", _START, str(os.getpid()), str(self.package_dir),
             "--listen", self.address],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + self.timeout_s
        while not self._ready.wait(0.1):
            if self._process.poll() is not None:
                self._process.wait()
                time.sleep(0.1)  # let the reader take the last lines
                raise LoadFailed(self.reason(), self.output)
            if time.monotonic() > deadline:
                self.close()
                raise LoadFailed(f"the model did not load within {self.timeout_s:g} s (MESHSERVE_GATE_LOAD_TIMEOUT_S)",
                                 self.output)
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.append(line.rstrip("\n"))
            if ADAPTER_READY in line:
                self._ready.set()

    @property
    def output(self) -> list[str]:
        return list(self._lines)

    def reason(self) -> str:
        """Why the adapter stopped: its last `meshserve` message (with the lines it runs on to,
        as an R error's do), else its last error line, else its last line."""
        lines = [line for line in self._lines if line.strip()]
        for index in range(len(lines) - 1, -1, -1):
            if lines[index].startswith("meshserve"):
                return " ".join(line.strip() for line in lines[index:])[:1000]
        for line in reversed(lines):
            if "Error" in line or "error" in line:
                return line.strip()
        if lines:
            return lines[-1].strip()
        code = self._process.returncode if self._process is not None else None
        return f"the adapter exited (status {code}) without saying why"

    def infer(self, model: str, version: str, inputs: dict[str, np.ndarray],
              datatypes: dict[str, str], outputs: list[str]) -> dict[str, np.ndarray]:
        import tritonclient.grpc as triton

        client = triton.InferenceServerClient(self.address)
        try:
            tensors = []
            for name, array in inputs.items():
                tensor = triton.InferInput(name, list(array.shape), datatypes[name])
                tensor.set_data_from_numpy(array)
                tensors.append(tensor)
            result = client.infer(model, tensors, model_version=version,
                                  outputs=[triton.InferRequestedOutput(o) for o in outputs],
                                  client_timeout=self.timeout_s,
                                  headers=dict(mesh_secret_metadata()))  # inherited by the adapter, which asks for it
            return {o: result.as_numpy(o) for o in outputs}
        finally:
            client.close()

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __exit__(self, *exc) -> None:
        self.close()


def infer_error(exc: BaseException) -> str:
    """A failed inference as one line: the gRPC status and message the adapter answered."""
    status = getattr(exc, "status", None)
    message = getattr(exc, "message", None)
    if callable(status) and callable(message):  # tritonclient's InferenceServerException
        return f"{status() or 'error'}: {message()}"
    return f"{type(exc).__name__}: {exc}"
