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
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from meshserve.core.errors import DeadlineExceeded


class PredictWorkers:
    def __init__(self, threads: int, spare: int):
        self.threads = threads
        self.spare = spare
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

    async def run(self, function: Callable[[Any], Any], argument: Any, deadline: float | None) -> Any:
        """FUNCTION(ARGUMENT) on a worker; DeadlineExceeded once DEADLINE (time.monotonic) passes."""
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("the deadline passed before the model could start")
        if self._places.locked():
            try:
                await asyncio.wait_for(self._places.acquire(), remaining)
            except TimeoutError:
                raise DeadlineExceeded("the deadline passed while every worker of this model was busy") from None
        else:
            await self._places.acquire()  # a free place: taken at once, without wait_for's extra task
        future: Future = self._executor.submit(function, argument)
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
