"""Each micro-batch runs under its own requests' deadline, not the first caller's."""

import asyncio
import time

import numpy as np

from meshserve.adapters.batching import MicroBatcher
from meshserve.adapters.runtime import request_deadline


class DeadlineRecorder:
    def __init__(self):
        self.seen: list[float | None] = []

    async def predict(self, inputs):
        self.seen.append(request_deadline.get())
        await asyncio.sleep(0.005)
        return {"y": inputs["x"]}


async def predict_with_deadline(batcher, deadline):
    request_deadline.set(deadline)  # as the data plane does, in the request's own task
    return await batcher.predict({"x": np.zeros((1, 2))})


def test_later_batches_carry_the_earliest_deadline_of_their_own_requests():
    async def scenario():
        model = DeadlineRecorder()
        batcher = MicroBatcher(model.predict, max_batch_size=8, max_wait_us=20_000)
        first = time.monotonic() + 0.001  # the caller that starts the worker; soon past
        await asyncio.create_task(predict_with_deadline(batcher, first))
        later = [time.monotonic() + 60 + i for i in range(3)]
        await asyncio.gather(*(asyncio.create_task(predict_with_deadline(batcher, d)) for d in later))
        await batcher.close()
        return model.seen, first, later

    seen, first, later = asyncio.run(scenario())
    assert seen[0] == first
    assert first not in seen[1:]
    assert min(later) in seen[1:]
    assert all(d is not None and d >= min(later) for d in seen[1:])


def test_a_batch_of_requests_without_deadlines_runs_without_one():
    async def scenario():
        model = DeadlineRecorder()
        batcher = MicroBatcher(model.predict, max_batch_size=8, max_wait_us=20_000)
        await asyncio.create_task(predict_with_deadline(batcher, time.monotonic() + 0.001))
        await asyncio.gather(*(asyncio.create_task(predict_with_deadline(batcher, None)) for _ in range(3)))
        await batcher.close()
        return model.seen

    assert all(d is None for d in asyncio.run(scenario())[1:])
