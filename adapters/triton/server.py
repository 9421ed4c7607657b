"""The bundled Triton Inference Server: find it, prepare it, start it, keep it alive, stop it.

meshserve runs the `tritonserver` binary shipped inside the `nvidia-pytriton` wheel, so no
Docker image is needed. The wheel lives in Triton's own virtual environment (triton_env.py), apart
from meshserve's because it pins numpy<2. The binary wants three things the wheel does not arrange
by itself:
- a backend folder `<dir>/python/` holding `libtriton_python.so`, `triton_python_backend_utils.py`
  and the Python-backend stub built for that environment's Python;
- `LD_LIBRARY_PATH` with the wheel's bundled libraries and that Python's `libpython`;
- that environment's `bin` first on `PATH`, so the stub's Python finds numpy and the model's imports.

One `TritonServer` belongs to one adapter process (the Triton runtime owns it). It runs with
`--model-control-mode=explicit`, so it loads only the models it is asked to, on loopback ports:
the launcher's (MESHSERVE_TRITON_GRPC_PORT / _HTTP_PORT, so Envoy can route clients straight to
Triton), or free ones. If Triton dies, the supervisor marks it unavailable (requests fail fast with
UNAVAILABLE), starts a new one on the same ports, loads the same models again and marks it
available. Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from meshserve.adapters.triton.triton_env import TritonEnvironment, not_installed_message, triton_environment
from meshserve.core.parent_death import die_with_parent
from meshserve.core.ports import free_port
from meshserve.core.restart_policy import RestartPolicy

log = logging.getLogger("meshserve.triton")

STUB_NAME = "triton_python_backend_stub"
BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
# Triton's error lines start with E and the date; protobuf parse errors (bad config.pbtxt) with this.
_ERROR_PREFIXES = ("E0", "E1", "[libprotobuf ERROR")
# Triton says these on every CPU-only machine; they are noise, not the cause of a failure.
_HARMLESS = ("CudaDriverHelper", "NVML", "DCGM", "pinned memory", "CUDA driver version")


class TritonNotInstalled(RuntimeError):
    """The nvidia-pytriton wheel (which carries the tritonserver binary) is missing or incomplete."""


class TritonStartError(RuntimeError):
    """tritonserver did not come up; the message carries Triton's own words and the log path."""


class TritonLoadError(RuntimeError):
    """Triton refused to load a model; the message carries Triton's own words and the paths."""


@dataclass(frozen=True)
class TritonInstallation:
    """Where the pieces of the bundled Triton live, in Triton's own environment."""

    binary: Path
    backend_source: Path
    stub: Path
    library_path: tuple[str, ...]
    environment: TritonEnvironment  # the virtual environment holding nvidia-pytriton

    @classmethod
    def locate(cls) -> "TritonInstallation":
        environment = triton_environment()
        if environment is None:
            raise TritonNotInstalled(not_installed_message())
        root = environment.pytriton / "tritonserver"
        version = environment.python_version
        installation = cls(
            binary=root / "bin" / "tritonserver",
            backend_source=root / "backends" / "python",
            stub=root / "python_backend_stubs" / version / STUB_NAME,
            library_path=(str(environment.site_packages / "nvidia_pytriton.libs"), environment.libdir),
            environment=environment,
        )
        missing = [p for p in (installation.binary, installation.stub,
                               *(installation.backend_source / f for f in BACKEND_FILES)) if not p.exists()]
        if missing:
            raise TritonNotInstalled(
                f"the nvidia-pytriton wheel in {environment.prefix} is incomplete for Python {version}: missing "
                f"{', '.join(map(str, missing))}; reinstall it with `{environment.python} -m pip install "
                "--force-reinstall nvidia-pytriton==0.7.0`")
        return installation

    def environment_variables(self) -> dict[str, str]:
        """The process environment tritonserver and its Python stubs need."""
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            [p for p in self.library_path if p] + [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p])
        # The stub runs the model's Python with whatever `python` comes first on PATH: Triton's environment's.
        env["PATH"] = os.pathsep.join([str(self.environment.bin), env.get("PATH", "")])
        return env


def default_backend_directory(installation: TritonInstallation) -> Path:
    """Backends folder prepared once per Triton environment (the stub depends on its Python)."""
    from meshserve.core.settings import get_settings

    override = get_settings().triton_backends_dir
    if override:
        return Path(override)
    version = installation.environment.python_version.replace(".", "")
    return installation.environment.prefix / "var" / "meshserve" / f"triton-backends-py{version}"


def prepare_backend_directory(installation: TritonInstallation, target: Path | None = None) -> Path:
    """Create `<target>/python/` with the Python backend and the Triton environment's stub; skip what is in place."""
    target = target or default_backend_directory(installation)
    python_dir = target / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    sources = [installation.backend_source / f for f in BACKEND_FILES] + [installation.stub]
    for source in sources:
        destination = python_dir / source.name
        if destination.exists() and destination.stat().st_size == source.stat().st_size \
                and destination.stat().st_mtime >= source.stat().st_mtime:
            continue
        # Copy to a temporary name and rename, so a concurrent start never sees half a file.
        partial = destination.with_name(destination.name + f".{os.getpid()}.partial")
        shutil.copy2(source, partial)
        os.replace(partial, destination)
    (python_dir / STUB_NAME).chmod(0o755)
    return target


def triton_client(address: str):
    """tritonclient's asyncio gRPC client with meshserve's message limits and quick reconnects."""
    import tritonclient.grpc.aio as triton_grpc

    from meshserve.core.grpc_server import channel_options

    return triton_grpc.InferenceServerClient(address, channel_args=channel_options())


def error_lines(log_text: str, already_said: str = "") -> list[str]:
    """Triton's error lines from a slice of its log, minus CPU-only noise and what `already_said` holds."""
    lines = []
    for line in log_text.splitlines():
        line = line.strip()
        if not line.startswith(_ERROR_PREFIXES) or any(h in line for h in _HARMLESS):
            continue
        # Triton quotes the message after the source location; skip it when the caller has it already.
        message = line.partition('] "')[2].rstrip('"').replace("\\n", "\n")
        tail = message.strip().splitlines()[0][-60:] if message.strip() else ""
        if tail and tail in already_said:
            continue
        lines.append(line.replace("\\n", " | ")[:600])
    return lines


class TritonServer:
    """One supervised tritonserver process serving one model repository on loopback ports."""

    def __init__(self, model_repository: Path, *, label: str = "triton", log_directory: Path | None = None,
                 startup_timeout_s: float = 60.0, exit_timeout_s: int = 5, restart: bool = True,
                 grpc_port: int | None = None, http_port: int | None = None):
        self.model_repository = Path(model_repository).resolve()
        self.extra_repositories: list[Path] = []  # more repositories (the mesh-named alias), set before start
        self.label = label
        self.startup_timeout_s = startup_timeout_s
        self.exit_timeout_s = exit_timeout_s
        self.restart_enabled = restart
        from meshserve.core.settings import get_settings

        chosen = log_directory or get_settings().triton_log_dir
        # Without a run folder (a lone adapter) the log is temporary: kept only if Triton failed.
        self._temporary_log = chosen is None
        log_directory = Path(chosen or Path(tempfile.gettempdir()) / "meshserve-triton")
        log_directory.mkdir(parents=True, exist_ok=True)
        self.log_path = log_directory / f"{label}-{os.getpid()}.log"
        settings = get_settings()
        # Fixed ports (0: a free one, chosen at the first start and kept across restarts).
        self.grpc_port = settings.triton_grpc_port if grpc_port is None else grpc_port
        self.http_port = settings.triton_http_port if http_port is None else http_port  # 0: no HTTP
        self._fixed_grpc = self.grpc_port != 0
        self.metrics_port = 0
        self.process: asyncio.subprocess.Process | None = None
        self.client = None  # tritonclient.grpc.aio.InferenceServerClient for the running process
        self.restarts = 0
        self.last_exit: str | None = None
        self._loaded: list[tuple[str, str | None]] = []  # (model name, config override) to reload after restart
        self._available = asyncio.Event()
        self._stopping = False
        self._supervisor: asyncio.Task | None = None

    # -- addresses and state ------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_address(self) -> str | None:
        return f"127.0.0.1:{self.http_port}" if self.http_port else None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def available(self) -> bool:
        """True while Triton runs and has every requested model loaded; False while it restarts."""
        return self._available.is_set()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def log_offset(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start tritonserver and wait until it is ready; raise TritonStartError with Triton's message."""
        installation = TritonInstallation.locate()
        backends = prepare_backend_directory(installation)
        if not self.model_repository.is_dir():
            raise TritonStartError(f"Triton model repository {self.model_repository} is not a directory")
        # A free port can be taken between our check and Triton's bind: try fresh ports a few times
        # (a port the launcher fixed is not ours to change: the first refusal is final).
        for attempt in range(3):
            try:
                await self._launch(installation, backends)
                break
            except TritonStartError as exc:
                if "already in use" not in str(exc) or attempt == 2 or self._fixed_grpc:
                    raise
                self.grpc_port = self.metrics_port = 0
        self._available.set()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(installation, backends))

    async def _launch(self, installation: TritonInstallation, backends: Path) -> None:
        # A restart keeps the ports of the first start: Envoy and the endpoint file name them.
        self.grpc_port = self.grpc_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        http = ["--allow-http=true", "--http-address=127.0.0.1", f"--http-port={self.http_port}"] \
            if self.http_port else ["--allow-http=false"]
        args = [
            str(installation.binary),
            f"--model-repository={self.model_repository}",
            *(f"--model-repository={extra}" for extra in self.extra_repositories),
            f"--backend-directory={backends}",
            "--model-control-mode=explicit",
            *http,
            "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
            "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            "--strict-readiness=true",
            # A restarted Triton loads what it served before it opens its ports: Envoy sends clients
            # straight to it, and a port open before the model is loaded would answer NOT_FOUND.
            *(f"--load-model={name}" for name, config_json in self._loaded if config_json is None),
        ]
        offset = self.log_offset()
        with self.log_path.open("ab") as log_file:
            log_file.write(f"\n=== meshserve starts {' '.join(args)} ===\n".encode())
            log_file.flush()
            # Own session: Ctrl-C in the adapter's terminal must not stop Triton behind the adapter's
            # back (the adapter stops it); the death signal covers an adapter killed outright.
            self.process = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=asyncio.subprocess.STDOUT,
                env=installation.environment_variables(), start_new_session=True, preexec_fn=die_with_parent)
        started = time.monotonic()
        self.client = triton_client(self.address)
        while True:
            if self.process.returncode is not None:
                await self._drop_client()
                lines = error_lines(self.log_since(offset)) or ["(no error lines; see the log)"]
                raise TritonStartError(
                    f"tritonserver exited with code {self.process.returncode} while starting "
                    f"(repository {self.model_repository}):\n  " + "\n  ".join(lines[-8:]) + f"\nFull log: {self.log_path}")
            with contextlib.suppress(Exception):
                if await self.client.is_server_ready(client_timeout=1.0):
                    log.info("tritonserver %s (pid %s) ready on %s, log %s", self.label, self.process.pid,
                             self.address, self.log_path)
                    return
            if time.monotonic() - started > self.startup_timeout_s:
                await self._kill_process_group()
                await self._drop_client()
                raise TritonStartError(
                    f"tritonserver was not ready after {self.startup_timeout_s:.0f} s "
                    f"(repository {self.model_repository}); full log: {self.log_path}")
            await asyncio.sleep(0.05)

    async def load_model(self, name: str, config_json: str | None = None, timeout_s: float = 120.0) -> None:
        """Load a model (explicit model control); raise TritonLoadError with Triton's message and log lines."""
        await self._load(name, config_json, timeout_s)
        if (name, config_json) not in self._loaded:
            self._loaded.append((name, config_json))

    async def _load(self, name: str, config_json: str | None, timeout_s: float) -> None:
        from tritonclient.utils import InferenceServerException

        offset = self.log_offset()
        try:
            await self.client.load_model(name, config=config_json, client_timeout=timeout_s)
        except InferenceServerException as exc:
            await asyncio.sleep(0.05)  # let Triton finish writing the lines that explain the failure
            text = f"Triton could not load model '{name}' from {self.model_repository / name}: {exc.message().strip()}"
            details = error_lines(self.log_since(offset), already_said=text)
            if details:
                text += "\nTriton's log says:\n  " + "\n  ".join(details[-8:])
            text += f"\nFull log: {self.log_path}"
            raise TritonLoadError(text) from None

    async def unload_model(self, name: str) -> None:
        self._loaded = [(n, c) for n, c in self._loaded if n != name]
        if self.client is not None and self.available:
            with contextlib.suppress(Exception):
                await self.client.unload_model(name, client_timeout=30.0)

    async def _supervise(self, installation: TritonInstallation, backends: Path) -> None:
        """Restart Triton whenever it exits on its own, with back-off, reloading its models."""
        policy = RestartPolicy(first_s=0.2, max_s=30.0)
        policy.up()
        while not self._stopping:
            process = self.process
            code = await process.wait()
            if self._stopping:
                return
            self._available.clear()
            self.last_exit = f"tritonserver (pid {process.pid}) exited with code {code}"
            log.error("%s; see %s", self.last_exit, self.log_path)
            # Closing the channel now would cancel calls still in flight on it, and a cancelled call
            # leaves its caller without an answer; let them fail UNAVAILABLE first, then close it.
            retired, self.client = self.client, None
            asyncio.get_running_loop().create_task(self._close_later(retired, delay_s=10.0))
            await self._kill_process_group(process)  # its Python stubs may still be running
            if not self.restart_enabled:
                return
            while not self._stopping:
                await asyncio.sleep(policy.delay_after_exit())
                if self._stopping:
                    return
                try:
                    await self._launch(installation, backends)
                    for name, config_json in self._loaded:
                        await self._load(name, config_json, timeout_s=120.0)
                except (TritonStartError, TritonLoadError) as exc:
                    log.error("restarting tritonserver failed (trying again): %s", exc)
                    if self.process is not None and self.process.returncode is None:
                        await self._kill_process_group()
                    continue
                self.restarts += 1
                policy.up()
                self._available.set()
                log.warning("tritonserver restarted (pid %s, restart %d) on %s", self.process.pid,
                            self.restarts, self.address)
                break

    async def stop(self) -> None:
        """Stop Triton: SIGTERM to let it finish in-flight requests, SIGKILL if it overstays."""
        self._stopping = True
        self._available.clear()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
        await self._drop_client()
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=self.exit_timeout_s + 5)
        except asyncio.TimeoutError:
            log.warning("tritonserver (pid %s) did not stop after SIGTERM; killing it", process.pid)
        await self._kill_process_group(process)
        if self._temporary_log and self.restarts == 0 and self.last_exit is None and process.returncode == 0:
            self.log_path.unlink(missing_ok=True)

    async def _kill_process_group(self, process: asyncio.subprocess.Process | None = None) -> None:
        process = process or self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # Triton and its Python backend stubs
        if process.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), timeout=5)

    @staticmethod
    async def _close_later(client, delay_s: float) -> None:
        if client is not None:
            await asyncio.sleep(delay_s)
            with contextlib.suppress(Exception):
                await client.close()

    async def _drop_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()


def missing_libraries(installation: TritonInstallation, backends: Path) -> list[str]:
    """Shared libraries the binary, the Python backend or its stub cannot find here (empty when all load)."""
    import subprocess

    if shutil.which("ldd") is None:
        return []
    missing = []
    for program in (installation.binary, backends / "python" / BACKEND_FILES[0], backends / "python" / STUB_NAME):
        result = subprocess.run(["ldd", str(program)], capture_output=True, text=True, env=installation.environment_variables())
        missing += [f"{line.split()[0]} (needed by {program.name})"
                    for line in result.stdout.splitlines() if "not found" in line]
    return missing


def main() -> None:
    """Prepare and check the bundled Triton: `python -m meshserve.adapters.triton.server --prepare --check`."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--prepare", action="store_true", help="prepare the Python backend folder")
    parser.add_argument("--check", action="store_true", help="check every shared library the binary needs is found")
    args = parser.parse_args()
    installation = TritonInstallation.locate()
    backends = prepare_backend_directory(installation)
    if args.prepare:
        print(f"Triton backends ready in {backends}")
    if args.check:
        missing = missing_libraries(installation, backends)
        if missing:
            raise SystemExit("tritonserver cannot start here; missing libraries: " + ", ".join(missing))
        print(f"tritonserver at {installation.binary} finds all its libraries")


if __name__ == "__main__":
    main()
