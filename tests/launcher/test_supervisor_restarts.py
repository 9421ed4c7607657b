"""The supervisor's decisions about its children, with real (tiny) processes: a child that dies
after it was ready is restarted and said to be back; one that dies or stays silent before it is
ready fails `meshserve up` with the reason; a retired replica is left dead; stop ends them all."""

from __future__ import annotations

import asyncio
import sys

import pytest

from meshserve.core.settings import get_settings
from meshserve.launcher.supervisor import ChildFailed, ChildSpec, Supervisor


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch):
    monkeypatch.setenv("MESHSERVE_RESTART_BACKOFF_S", "0.2")
    monkeypatch.setenv("MESHSERVE_SHUTDOWN_GRACE_S", "1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def child(label: str, program: str) -> ChildSpec:
    return ChildSpec(label=label, argv=[sys.executable, "-c", program], ready_marker="READY")


SERVES_THEN_CRASHES = "import os, sys, time\nprint('READY', os.getpid(), flush=True)\ntime.sleep(0.3)\nsys.exit(3)"
SERVES = "import os, time\nprint('READY', os.getpid(), flush=True)\ntime.sleep(60)"


async def until(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_a_child_that_crashes_after_serving_is_restarted_and_said_to_be_back():
    lines: list[str] = []
    restarted = []

    async def scenario():
        supervisor = Supervisor(log=lines.append, on_restart=restarted.append)
        first = await supervisor.start(child("model:1", SERVES_THEN_CRASHES), timeout=10)
        pid = first.process.pid
        await until(lambda: any("is back (restart 1)" in line for line in lines))
        assert first.process.pid != pid, "a new process"
        await supervisor.stop()
        return first

    first = asyncio.run(scenario())
    assert first.restarts >= 1 and restarted[0] is first
    assert any(line.startswith("meshserve: model:1 exited with code 3; restarting in 0.2 s") for line in lines), lines
    assert any(line.startswith("[model:1] READY") for line in lines), "the child's output is prefixed by its label"


def test_a_child_that_exits_before_it_is_ready_fails_naming_its_exit_code():
    async def scenario():
        supervisor = Supervisor(log=lambda line: None)
        with pytest.raises(ChildFailed) as failed:
            await supervisor.start(child("model:2", "import sys; print('cannot load model.joblib'); sys.exit(4)"), 10)
        await supervisor.stop()
        return failed.value

    assert str(asyncio.run(scenario())) == "model:2 exited with code 4 before it was ready; its output is above"


def test_a_child_that_never_says_ready_is_killed_and_the_timeout_named_with_the_setting_to_raise():
    async def scenario():
        supervisor = Supervisor(log=lambda line: None)
        with pytest.raises(ChildFailed) as failed:
            await supervisor.start(child("model:3", "import time; time.sleep(60)"), timeout=1.0)
        process = supervisor.children[0].process
        await asyncio.wait_for(process.wait(), 5)
        await supervisor.stop()
        return failed.value

    message = str(asyncio.run(scenario()))
    assert message.startswith("model:3 did not become ready within 1 s")
    assert "MESHSERVE_ADAPTER_START_TIMEOUT_S" in message


def test_a_retired_replica_stays_stopped_while_its_sibling_is_still_supervised():
    lines: list[str] = []

    async def scenario():
        supervisor = Supervisor(log=lines.append)
        kept = await supervisor.start(child("model:1#1", SERVES), timeout=10)
        gone = await supervisor.start(child("model:1#2", SERVES), timeout=10)
        await supervisor.retire("model:1#2")
        await asyncio.sleep(0.3)
        still = [c.spec.label for c in supervisor.children]
        alive = kept.process.returncode is None
        await supervisor.stop()
        return gone, still, alive, kept

    gone, still, alive, kept = asyncio.run(scenario())
    assert gone.process.returncode is not None and gone.restarts == 0
    assert still == ["model:1#1"] and alive
    assert not any("restarting" in line for line in lines)
    assert kept.process.returncode is not None, "stop ends every child"
