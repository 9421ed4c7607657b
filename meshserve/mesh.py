"""`meshserve up DIR`: the whole mesh on one machine as native processes.

One adapter process per model package found in DIR, the router in front of them, all
supervised: a crashed process is restarted, and SIGTERM or Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from meshserve.model_package import ModelPackage, discover_packages
from meshserve.router.model_table import ModelTable
from meshserve.settings import get_settings
from meshserve.supervisor import ChildFailed, ChildSpec, Supervisor, python_argv


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def resolve_listen(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    return f"{host}:{free_port(host) if port == '0' else port}"


def log(message: str) -> None:
    print(message, flush=True)


class Mesh:
    def __init__(self, models_dir: str | Path, listen: str, run_dir: str | Path | None = None):
        self.models_dir = Path(models_dir)
        self.listen = resolve_listen(listen)
        self._own_run_dir = run_dir is None
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="meshserve-run-"))
        self.supervisor = Supervisor(log=log)
        self.packages: list[ModelPackage] = []

    async def start(self) -> None:
        self.packages = discover_packages(self.models_dir)  # a bad manifest stops us here, before any process
        self.run_dir.mkdir(parents=True, exist_ok=True)
        settings = get_settings()
        log(f"meshserve: starting {len(self.packages)} model(s) from {self.models_dir}")
        addresses = [f"127.0.0.1:{free_port()}" for _ in self.packages]
        await asyncio.gather(*(
            self.supervisor.start(
                ChildSpec(f"{p.name}:{p.version}", python_argv("-m", "meshserve.adapters.server", str(p.directory),
                                                                "--listen", address),
                          ready_marker="meshserve adapter ready"),
                timeout=settings.adapter_start_timeout_s)
            for p, address in zip(self.packages, addresses)))
        table_path = self.run_dir / "models.json"
        ModelTable.write(table_path, list(zip(self.packages, addresses)))
        await self.supervisor.start(
            ChildSpec("router", python_argv("-m", "meshserve.router.server", "--table", str(table_path),
                                            "--listen", self.listen),
                      ready_marker="meshserve router ready"),
            timeout=30)
        models = ", ".join(f"{p.name} ({p.version}, {p.manifest.runtime})" for p in self.packages)
        log(f"meshserve: serving {models}")
        log(f"meshserve: clients connect to {self.listen} (Open Inference Protocol over gRPC; "
            "control API meshserve.v1.Control); Ctrl-C stops the mesh")

    async def stop(self) -> None:
        await self.supervisor.stop()
        if self._own_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        log("meshserve: stopped")


async def run_mesh(models_dir: str, listen: str, run_dir: str | None) -> int:
    mesh = Mesh(models_dir, listen, run_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = loop.create_task(mesh.start())
    stopper = loop.create_task(stop.wait())
    await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if starting.done() and starting.exception() is not None:
        exc = starting.exception()
        if not isinstance(exc, ChildFailed):
            await mesh.stop()
            raise exc
        print(f"meshserve: {exc}", file=sys.stderr, flush=True)
        code = 1
    elif not starting.done():
        starting.cancel()
    else:
        await stopper
    stopper.cancel()
    await mesh.stop()
    return code
