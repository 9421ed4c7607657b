"""The threads that run a Python model's predict, so that a call abandoned at its deadline
frees its place for the next request.

A Python thread cannot be stopped from outside: a predict that runs past its caller's
deadline keeps its thread until it returns. Before, such calls held every worker (four
abandoned 30 s calls blocked a model for 30 s while health said SERVING). Now a call that
outlives its deadline is answered DEADLINE_EXCEEDED at once and gives its place back; its
thread finishes in the background as a spare. Up to `spare` threads may be left running
like that; while they are all taken the model cannot take work on time, and `ready()` says
so, which the adapter's health reports as NOT_SERVING (Envoy then sends traffic to other
replicas), until the abandoned calls return.

Handing a call to a thread and its answer back to the event loop costs about a sixth of the
CPU a small model's whole request takes (a thread wake, the GIL changing hands twice, the
loop's wake-up pipe). A model whose time follows the rows it is given (a scikit-learn
estimator) may skip it for calls it is known to answer quickly: `FastCalls` keeps, per size
class of the row count, how many calls in a row took under the limit; once enough did, calls
of that size run on the event loop itself, and the first that takes longer sends its size
class (and the larger ones) back to the threads. At worst the loop waits for one such call.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from meshserve.core.errors import DeadlineExceeded


# Calls of one size class that must all finish under the limit before that class runs on the loop.
FAST_STREAK = 32
LOG_EVERY_S = 60.0  # at most one line a minute per model about its calls' moves

log = logging.getLogger("meshserve.adapters.python")


def rows_of(inputs: Any) -> int:
    """The rows of a request's inputs (the first dimension of its first tensor), 1 for a scalar."""
    first = next(iter(inputs.values()), None) if isinstance(inputs, dict) else None
    shape = getattr(first, "shape", ())
    return int(shape[0]) if shape else 1


class FastCalls:
    """Which calls may run on the event loop: those whose size class (the row count's bit
    length) has answered its last FAST_STREAK calls each in under LIMIT_S of CPU.

    Each move is logged (at most one line a minute for the model), so a change in a model's
    latency or CPU can be traced to it."""

    def __init__(self, limit_s: float, model: str = "the model"):
        self.limit_s = limit_s
        self.model = model
        # One slot per size class (a row count's bit length, at most 64), never resized: predict
        # threads update it while the loop reads it, and a dict growing under an iteration raises.
        self._streaks = [0] * 65
        self._logged_at = -LOG_EVERY_S

    def on_loop(self, rows: int) -> bool:
        return self.limit_s > 0 and self._streaks[_size(rows)] >= FAST_STREAK

    def took(self, rows: int, seconds: float) -> None:
        size = _size(rows)
        if seconds < self.limit_s:
            streak = self._streaks[size] + 1
            self._streaks[size] = min(streak, FAST_STREAK)
            if streak == FAST_STREAK:
                self._log(f"{self.model}: calls of {_size_class(size)} took under {self.limit_s * 1000:g} ms "
                          f"of CPU {FAST_STREAK} times in a row; they now run on the event loop")
            return
        was_on_loop = max(self._streaks[size:]) >= FAST_STREAK
        for larger in range(size, len(self._streaks)):  # larger calls of the same model are no faster
            self._streaks[larger] = 0
        if was_on_loop:
            self._log(f"{self.model}: a call of {_rows(rows)} took {seconds * 1000:.1f} ms of CPU (limit "
                      f"{self.limit_s * 1000:g} ms, python.on_loop_below_ms); calls of {_rows(rows)} or more go back "
                      "to the predict threads")

    def _log(self, message: str) -> None:
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            log.info("%s", message)


def _size(rows: int) -> int:
    return min(rows.bit_length(), 64)


def _size_class(size: int) -> str:
    low, high = (1 << (size - 1)) if size else 0, (1 << size) - 1
    return _rows(high) if low == high else f"{low} to {high} rows"


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


class PredictWorkers:
    def __init__(self, threads: int, spare: int, on_loop_below_s: float = 0.0, model: str = "the model"):
        self.threads = threads
        self.spare = spare
        self.fast = FastCalls(on_loop_below_s, model)
        # Room for THREADS live calls plus SPARE abandoned ones still running.
        self._executor = ThreadPoolExecutor(threads + spare, thread_name_prefix="predict")
        self._places = asyncio.Semaphore(threads)
        self._abandoned = 0
        self._lock = threading.Lock()

    @property
    def abandoned(self) -> int:
        """Calls given up at their deadline whose threads are still running."""
        with self._lock:
            return self._abandoned

    def ready(self) -> bool:
        return self.abandoned < self.spare

    async def run(self, function: Callable[[Any], Any], argument: Any, deadline: float | None, rows: int = 1) -> Any:
        """FUNCTION(ARGUMENT) on a worker, or on the loop when calls of ROWS rows are known to be
        fast; DeadlineExceeded once DEADLINE (time.monotonic) passes."""
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("the deadline passed before the model could start")
        if self.fast.on_loop(rows):
            return self._timed(function, argument, rows)
        if self._places.locked():
            try:
                await asyncio.wait_for(self._places.acquire(), remaining)
            except TimeoutError:
                raise DeadlineExceeded("the deadline passed while every worker of this model was busy") from None
        else:
            await self._places.acquire()  # a free place: taken at once, without wait_for's extra task
        future: Future = (self._executor.submit(self._timed, function, argument, rows) if self.fast.limit_s > 0
                          else self._executor.submit(function, argument))
        # asyncio.timeout_at costs one timer; wait_for(shield(...)) cost two more futures and a
        # task per call, a few percent of a small model's whole request. The deadline is on
        # time.monotonic, the loop's clock.
        timer = asyncio.timeout_at(deadline)
        try:
            async with timer:
                return await asyncio.wrap_future(future)
        except TimeoutError:
            if not timer.expired():
                raise  # the model itself raised TimeoutError
            self._abandon(future)
            raise DeadlineExceeded("the model did not answer within the caller's deadline; its worker "
                                   "was given to the next request") from None
        except asyncio.CancelledError:  # the caller went away (cancelled the call)
            self._abandon(future)
            raise
        finally:
            self._places.release()

    def _timed(self, function: Callable[[Any], Any], argument: Any, rows: int) -> Any:
        # The thread's own CPU time: its wall time would count the GIL waits and the preemptions
        # of a busy machine, which are not the model's and would send it back and forth.
        started = time.thread_time()
        try:
            return function(argument)
        finally:
            self.fast.took(rows, time.thread_time() - started)

    def _abandon(self, future: Future) -> None:
        if not future.cancel():  # it is running: let it finish as a spare, counted until then
            with self._lock:
                self._abandoned += 1
            future.add_done_callback(self._returned)

    def _returned(self, _future: Future) -> None:
        with self._lock:
            self._abandoned -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
