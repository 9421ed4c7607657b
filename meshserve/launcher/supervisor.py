"""Start child processes, wait until they say they are ready, restart them when they
crash, and stop them all cleanly. Used by `meshserve up` for the router and adapters."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from dataclasses import dataclass, field

from meshserve.core.parent_death import die_with_parent
from meshserve.core.restart_policy import RestartPolicy
from meshserve.core.settings import get_settings, variable_for

# The longest wait before restarting a child that keeps crashing.
MAX_RESTART_DELAY_S = 10.0


@dataclass
class ChildSpec:
    label: str  # how its output lines are prefixed, e.g. "breast-cancer:1"
    argv: list[str]
    ready_marker: str  # a line containing this means the child is serving
    env: dict[str, str] | None = None


@dataclass
class Child:
    spec: ChildSpec
    process: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=40))
    restarts: int = 0
    retired: bool = False  # stopped on purpose (a replica scaled away): not to be restarted
    restart_policy: RestartPolicy = field(
        default_factory=lambda: RestartPolicy(get_settings().restart_backoff_s, MAX_RESTART_DELAY_S))


class ChildFailed(RuntimeError):
    pass


class Supervisor:
    def __init__(self, log=print, on_restart=None):
        self.children: list[Child] = []
        self._on_restart = on_restart  # called with the Child each time it exits and is restarted (metrics)
        self.stopping = False
        self._log = log
        self._watchers: list[asyncio.Task] = []

    async def start(self, spec: ChildSpec, timeout: float) -> Child:
        """Start a child and wait until it prints its ready line; raise ChildFailed if it does not."""
        child = Child(spec)
        self.children.append(child)
        await self._spawn(child)
        await self._wait_ready(child, timeout)
        child.restart_policy.up()
        self._watchers.append(asyncio.get_running_loop().create_task(self._watch(child)))
        return child

    async def _spawn(self, child: Child) -> None:
        child.ready.clear()
        env = {**os.environ, **(child.spec.env or {}), "PYTHONUNBUFFERED": "1"}
        child.process = await asyncio.create_subprocess_exec(
            *child.spec.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL, env=env, start_new_session=True, preexec_fn=die_with_parent)
        asyncio.get_running_loop().create_task(self._pump(child, child.process))

    async def _pump(self, child: Child, process: asyncio.subprocess.Process) -> None:
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            child.tail.append(line)
            if child.spec.ready_marker in line:
                child.ready.set()
            self._log(f"[{child.spec.label}] {line}")

    async def _wait_ready(self, child: Child, timeout: float) -> None:
        ready = asyncio.ensure_future(child.ready.wait())
        exited = asyncio.ensure_future(child.process.wait())
        done, _ = await asyncio.wait({ready, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        exited.cancel()
        if child.ready.is_set():
            return
        if child.process.returncode is None:
            child.process.kill()
            raise ChildFailed(f"{child.spec.label} did not become ready within {timeout:.0f} s "
                              f"(raise {variable_for('adapter_start_timeout_s')} if the model is slow to load)")
        await asyncio.sleep(0.1)  # let the last output lines arrive
        raise ChildFailed(f"{child.spec.label} exited with code {child.process.returncode} before it was ready; "
                          "its output is above")

    async def _watch(self, child: Child) -> None:
        while True:
            code = await child.process.wait()
            if self.stopping or child.retired:
                return
            child.restarts += 1
            if self._on_restart is not None:
                self._on_restart(child)
            delay = child.restart_policy.delay_after_exit()
            self._log(f"meshserve: {child.spec.label} exited with code {code}; restarting in {delay:.1f} s")
            await asyncio.sleep(delay)
            if self.stopping:
                return
            await self._spawn(child)
            try:
                await self._wait_ready(child, get_settings().adapter_start_timeout_s)
                child.restart_policy.up()
                self._log(f"meshserve: {child.spec.label} is back (restart {child.restarts})")
            except ChildFailed as exc:
                self._log(f"meshserve: restart failed: {exc}")

    async def retire(self, label: str) -> None:
        """Stop the child LABEL for good: SIGTERM, its grace period for calls in flight, then SIGKILL."""
        child = next((c for c in self.children if c.spec.label == label and not c.retired), None)
        if child is None:
            return
        child.retired = True
        process = child.process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), get_settings().shutdown_grace_s + 3)
            except TimeoutError:
                process.kill()
                await process.wait()
        self.children.remove(child)

    async def stop(self) -> None:
        """SIGTERM everything (newest first), wait the grace period, then SIGKILL what is left."""
        self.stopping = True
        for task in self._watchers:
            task.cancel()
        alive = [c.process for c in reversed(self.children) if c.process and c.process.returncode is None]
        for process in alive:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in alive)), get_settings().shutdown_grace_s + 3)
        except TimeoutError:
            for process in alive:
                if process.returncode is None:
                    process.kill()
            await asyncio.gather(*(p.wait() for p in alive))


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]
