"""Observers run beside the answer: awaited only when they must finish first, never able to fail it."""

import asyncio

import grpc
import pytest

from meshserve.core.errors import InvalidInput
from meshserve.core.mesh_protocol import CallInfo
from meshserve.core.observers import InferenceEvent, Observers


class Collector:
    def __init__(self, before_answer=False):
        self.before_answer = before_answer
        self.events = []

    def observe(self, event):
        self.events.append(event)


class Broken:
    before_answer = True

    def observe(self, event):
        raise RuntimeError("observer bug")


def event() -> InferenceEvent:
    return InferenceEvent(side="adapter", call=CallInfo("r1"), model="m", version="1")


def test_only_observers_that_must_finish_first_are_done_when_the_work_returns():
    before, after = Collector(before_answer=True), Collector()
    observers = Observers([Broken(), before, after])

    async def scenario():
        async with observers.observing(event()):
            pass
        counts = (len(before.events), len(after.events))
        await asyncio.sleep(0)
        return counts, (len(before.events), len(after.events))

    at_return, later = asyncio.run(scenario())
    assert at_return == (1, 0)
    assert later == (1, 1)


def test_a_failure_inside_is_observed_with_its_status_and_still_raised():
    collector = Collector()

    async def scenario():
        with pytest.raises(InvalidInput):
            async with Observers([collector]).observing(event()):
                raise InvalidInput("x", "shape [3] but the model takes [-1, 2]")
        await asyncio.sleep(0)

    asyncio.run(scenario())
    seen = collector.events[0]
    assert seen.code == grpc.StatusCode.INVALID_ARGUMENT
    assert seen.error == "input 'x': shape [3] but the model takes [-1, 2]"
    assert seen.timings["total"] >= 0


def test_without_observers_nothing_is_scheduled():
    assert not Observers()
