"""Micro-batching coalesces concurrent requests into one predict call and splits the answers back."""

import asyncio

import numpy as np
import pytest

from meshserve.adapters.batching import MicroBatcher


class CountingModel:
    """Doubles its input; remembers how many rows each call got; refuses rows holding -1."""

    def __init__(self):
        self.calls: list[int] = []

    async def predict(self, inputs):
        x = inputs["x"]
        self.calls.append(x.shape[0])
        await asyncio.sleep(0.001)
        if (x == -1).any():
            raise ValueError("row with -1")
        return {"y": x * 2, "total": np.full(x.shape[0], x.shape[0])}


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_requests_share_one_call_and_get_their_own_rows():
    async def scenario():
        model = CountingModel()
        batcher = MicroBatcher(model.predict, max_batch_size=64, max_wait_us=20_000)
        requests = [np.full((i % 3 + 1, 2), float(i)) for i in range(10)]
        answers = await asyncio.gather(*(batcher.predict({"x": r}) for r in requests))
        await batcher.close()
        return model, requests, answers

    model, requests, answers = run(scenario())
    for request, answer in zip(requests, answers):
        np.testing.assert_array_equal(answer["y"], request * 2)
    assert sum(model.calls) == sum(r.shape[0] for r in requests)
    assert len(model.calls) < 10, f"no coalescing happened: {model.calls}"


def test_a_batch_never_exceeds_the_row_cap():
    async def scenario():
        model = CountingModel()
        batcher = MicroBatcher(model.predict, max_batch_size=5, max_wait_us=20_000)
        await asyncio.gather(*(batcher.predict({"x": np.ones((2, 1))}) for _ in range(9)))
        await batcher.close()
        return model

    model = run(scenario())
    assert max(model.calls) <= 5 and sum(model.calls) == 18


def test_a_failing_request_fails_alone():
    async def scenario():
        model = CountingModel()
        batcher = MicroBatcher(model.predict, max_batch_size=64, max_wait_us=20_000)
        inputs = [np.ones((1, 1)), -np.ones((1, 1)), np.full((1, 1), 3.0)]
        answers = await asyncio.gather(*(batcher.predict({"x": x}) for x in inputs), return_exceptions=True)
        await batcher.close()
        return answers

    good, bad, other = run(scenario())
    assert isinstance(bad, ValueError)
    assert good["y"].tolist() == [[2.0]] and other["y"].tolist() == [[6.0]]


def test_requests_of_different_layouts_are_not_mixed():
    async def scenario():
        model = CountingModel()
        batcher = MicroBatcher(model.predict, max_batch_size=64, max_wait_us=20_000)
        answers = await asyncio.gather(batcher.predict({"x": np.ones((1, 2))}), batcher.predict({"x": np.ones((1, 3))}))
        await batcher.close()
        return answers

    narrow, wide = run(scenario())
    assert narrow["y"].shape == (1, 2) and wide["y"].shape == (1, 3)


@pytest.mark.parametrize("rows", [8, 20])
def test_a_request_as_large_as_the_cap_goes_straight_through(rows):
    async def scenario():
        model = CountingModel()
        batcher = MicroBatcher(model.predict, max_batch_size=8, max_wait_us=1_000_000)
        answer = await asyncio.wait_for(batcher.predict({"x": np.ones((rows, 1))}), 1.0)
        return model, answer

    model, answer = run(scenario())
    assert model.calls == [rows] and answer["y"].shape == (rows, 1)


def test_a_lone_request_on_an_idle_model_does_not_wait_for_company():
    async def scenario():
        model = CountingModel()
        batcher = MicroBatcher(model.predict, max_batch_size=64, max_wait_us=30_000_000)
        answer = await asyncio.wait_for(batcher.predict({"x": np.ones((1, 1))}), 5.0)
        await batcher.close()
        return answer

    assert run(scenario())["y"].tolist() == [[2.0]]


def test_with_concurrency_two_batches_run_at_once():
    class SlowModel:
        running = peak = 0

        async def predict(self, inputs):
            SlowModel.running += 1
            SlowModel.peak = max(SlowModel.peak, SlowModel.running)
            await asyncio.sleep(0.05)
            SlowModel.running -= 1
            return {"y": inputs["x"]}

    async def scenario(concurrency):
        SlowModel.running = SlowModel.peak = 0
        batcher = MicroBatcher(SlowModel().predict, max_batch_size=2, max_wait_us=0, concurrency=concurrency)
        await asyncio.gather(*(batcher.predict({"x": np.ones((1, 1))}) for _ in range(12)))
        await batcher.close()
        return SlowModel.peak

    assert run(scenario(1)) == 1
    assert run(scenario(2)) == 2
