"""A scikit-learn estimator's quick calls skip the hand-off to a predict thread: once calls of a
size have been fast FAST_STREAK times in a row they run on the event loop, and the first slow one
sends that size (and larger ones) back to the threads. A team's own function never runs on the
loop, however fast: it may sleep or wait on some inputs only."""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
import time

import joblib
import numpy as np
import pytest

from meshserve.adapters.python.runtime import PythonRuntime
from meshserve.adapters.python.workers import FAST_STREAK, PredictWorkers, rows_of
from meshserve.core.model_package import load_package
from test_python_runtime_loading import FEATURES, LABEL, module_name, package_at

LOOP_THREAD = threading.main_thread().name


def busy(seconds: float) -> None:
    """Spend SECONDS of CPU (a sleep would cost no CPU time and pass for fast on a thread)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def where(cost_s: float = 0.0):
    def call(_argument) -> str:
        busy(cost_s)
        return threading.current_thread().name
    return call


def threads_used(workers: PredictWorkers, calls: int, rows: int = 1, cost_s: float = 0.0) -> list[str]:
    async def run():
        try:
            return [await workers.run(where(cost_s), None, None, rows) for _ in range(calls)]
        finally:
            workers.close()
    return asyncio.run(run())


def test_fast_calls_move_onto_the_loop_after_a_streak():
    names = threads_used(PredictWorkers(4, 4, on_loop_below_s=0.05), FAST_STREAK + 5)
    assert all(n.startswith("predict") for n in names[:FAST_STREAK]), names[:FAST_STREAK]
    assert names[FAST_STREAK:] == [LOOP_THREAD] * 5


def test_a_slow_call_sends_its_size_and_larger_back_to_the_threads():
    async def run(workers: PredictWorkers):
        for rows in (1, 64):
            for _ in range(FAST_STREAK):
                await workers.run(where(), None, None, rows)
        on_loop_before = [await workers.run(where(), None, None, rows) for rows in (1, 64)]
        slow = await workers.run(where(0.03), None, None, 2)  # a size class of its own, not yet fast
        slow_on_loop = await workers.run(where(0.03), None, None, 1)  # on the loop, over the limit
        after = [await workers.run(where(), None, None, rows) for rows in (1, 64)]
        workers.close()
        return on_loop_before, slow, slow_on_loop, after

    on_loop_before, slow, slow_on_loop, after = asyncio.run(run(PredictWorkers(4, 4, on_loop_below_s=0.01)))
    assert on_loop_before == [LOOP_THREAD, LOOP_THREAD]
    assert slow.startswith("predict")
    assert slow_on_loop == LOOP_THREAD  # known fast until it was not: the one call the loop waits for
    assert all(name.startswith("predict") for name in after), after


def test_fast_small_calls_do_not_put_large_ones_on_the_loop():
    workers = PredictWorkers(4, 4, on_loop_below_s=0.05)
    threads_used(workers, FAST_STREAK, rows=1)
    assert not workers.fast.on_loop(1000)
    assert workers.fast.on_loop(1)


def test_a_limit_of_zero_keeps_every_call_on_the_threads():
    names = threads_used(PredictWorkers(4, 4, on_loop_below_s=0.0), FAST_STREAK * 2)
    assert all(n.startswith("predict") for n in names)


def test_calls_over_the_limit_never_reach_the_loop():
    names = threads_used(PredictWorkers(4, 4, on_loop_below_s=0.002), FAST_STREAK + 3, cost_s=0.004)
    assert all(n.startswith("predict") for n in names)


def test_rows_are_read_from_the_first_input():
    assert rows_of({"x": np.zeros((7, 3))}) == 7
    assert rows_of({"x": np.float64(1.0)}) == 1
    assert rows_of({}) == 1


THREAD_NOTING = '''
import threading
from sklearn.linear_model import LogisticRegression

SEEN = []


class ThreadNoting(LogisticRegression):
    def predict(self, X):
        SEEN.append(threading.current_thread().name)
        return super().predict(X)
'''

FUNCTION_NOTING = '''
import threading

SEEN = []


def predict(inputs):
    SEEN.append(threading.current_thread().name)
    return inputs["features"][:, 0].astype("int64")
'''


def serve(folder, calls: int) -> None:
    runtime = PythonRuntime()

    async def run():
        await runtime.load(load_package(folder))
        try:
            for _ in range(calls):
                await runtime.predict({"features": np.array([[0.0, 0.1]])})
        finally:
            await runtime.close()
    asyncio.run(run())


@pytest.fixture
def noting_module(tmp_path):
    name = module_name(tmp_path)
    folder = tmp_path / "package"
    folder.mkdir()
    sys.path.insert(0, str(folder))
    yield name, folder
    sys.path.remove(str(folder))
    sys.modules.pop(name, None)


def thread_noting_estimator(noting_module):
    """A fitted estimator saved as the package's model.joblib, whose predict notes the thread it ran on."""
    name, folder = noting_module
    (folder / f"{name}.py").write_text(THREAD_NOTING)
    module = importlib.import_module(name)
    estimator = module.ThreadNoting().fit(np.array([[0.0, 0.0], [1.0, 1.0], [0.1, 0.0], [0.9, 1.0]]),
                                          np.array([0, 1, 0, 1]))
    joblib.dump(estimator, folder / "model.joblib")
    return folder, module


def test_an_estimator_runs_on_the_loop_once_known_fast(noting_module):
    folder, module = thread_noting_estimator(noting_module)
    serve(package_at(folder, "model.joblib", [LABEL], FEATURES, python={"on_loop_below_ms": 50}), FAST_STREAK + 10)
    assert module.SEEN[-10:] == [LOOP_THREAD] * 10
    assert all(n.startswith("predict") for n in module.SEEN[:FAST_STREAK])


def test_an_estimator_told_zero_stays_on_the_threads(noting_module):
    folder, module = thread_noting_estimator(noting_module)
    serve(package_at(folder, "model.joblib", [LABEL], FEATURES, python={"on_loop_below_ms": 0}), FAST_STREAK + 10)
    assert len(module.SEEN) == FAST_STREAK + 10
    assert all(n.startswith("predict") for n in module.SEEN)


def test_a_function_never_runs_on_the_loop(noting_module):
    name, folder = noting_module
    (folder / f"{name}.py").write_text(FUNCTION_NOTING)
    serve(package_at(folder, f"{name}:predict", [LABEL], FEATURES, python={"on_loop_below_ms": 50}),
          FAST_STREAK * 2)
    seen = sys.modules[name].SEEN
    assert len(seen) == FAST_STREAK * 2
    assert all(n.startswith("predict") for n in seen)


def test_an_estimator_with_micro_batching_stays_on_the_threads(noting_module):
    folder, module = thread_noting_estimator(noting_module)
    serve(package_at(folder, "model.joblib", [LABEL], FEATURES, batching={"max_batch_size": 16}), FAST_STREAK + 10)
    assert len(module.SEEN) == FAST_STREAK + 10
    assert all(n.startswith("predict") for n in module.SEEN)


def test_each_move_is_logged_naming_the_model_the_rows_and_the_limit(caplog):
    async def run(workers: PredictWorkers):
        for _ in range(FAST_STREAK):
            await workers.run(where(), None, None, 1)
        workers.fast._logged_at = -1e9  # the next move is logged too, without waiting a minute
        await workers.run(where(0.03), None, None, 1)
        workers.close()

    with caplog.at_level("INFO", logger="meshserve.adapters.python"):
        asyncio.run(run(PredictWorkers(4, 4, on_loop_below_s=0.01, model="model scorer version 1")))
    moves = [r.getMessage() for r in caplog.records]
    assert any("model scorer version 1: calls of 1 row took under 10 ms" in m and "event loop" in m for m in moves)
    assert any("a call of 1 row took" in m and "limit 10 ms" in m and "back to the predict threads" in m
               for m in moves), moves
