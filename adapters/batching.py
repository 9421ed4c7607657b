"""Micro-batching: coalesce concurrent requests to one model into one predict call.

Runtimes with a high fixed cost per call (R, Java) serve spikes far better when many
small requests share a call. A lone request on an idle model is served at once, so
batching costs nothing at low load; once requests queue up, a batch waits at most
`max_wait_us` to fill, holds at most `max_batch_size` rows, and at most `concurrency`
batches run at once (more than one only helps a runtime with parallel workers). Answers
are split back by row counts. If a coalesced call fails, each request is retried alone so
an error is reported only to the request that caused it.

Each batch runs under the earliest deadline of its own requests (`request_deadline`), never
under that of whichever request happened to start the worker.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from meshserve.adapters.runtime import request_deadline
from meshserve.core.datatypes import Tensors
from meshserve.core.observers import InferenceEvent

Predict = Callable[[Tensors], Awaitable[Tensors]]


@dataclass
class _Pending:
    inputs: Tensors
    rows: int
    future: asyncio.Future = field(repr=False)
    deadline: float | None = None  # the caller's, as request_deadline holds it
    event: InferenceEvent | None = field(default=None, repr=False)  # where queue wait and batch size go
    queued_at: float = field(default_factory=time.perf_counter)

    def started(self, batch_size: int) -> None:
        if self.event is not None:
            self.event.timings["queue"] = time.perf_counter() - self.queued_at
            self.event.batch_size = batch_size

    @property
    def layout(self) -> tuple:
        return tuple(sorted((name, a.shape[1:], a.dtype.str) for name, a in self.inputs.items()))


class MicroBatcher:
    def __init__(self, predict: Predict, max_batch_size: int, max_wait_us: int, concurrency: int = 1):
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_us / 1e6
        self._slots = asyncio.Semaphore(concurrency)
        self._running = 0
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self.batches = 0  # how many coalesced calls ran, for metrics and tests
        self.batched_requests = 0

    @property
    def queued(self) -> int:
        """Requests waiting for a batch now (meshserve_queue_depth)."""
        return len(self._queue)

    async def predict(self, inputs: Tensors, event: InferenceEvent | None = None) -> Tensors:
        rows = next(iter(inputs.values())).shape[0] if inputs else 1
        if rows >= self.max_batch_size:
            return await self._predict(inputs)
        if self._worker is None:
            # A fresh context: the worker must not carry the first caller's request_deadline.
            self._worker = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())
        pending = _Pending(inputs, rows, asyncio.get_running_loop().create_future(),
                           deadline=request_deadline.get(), event=event)
        self._queue.append(pending)
        self._wakeup.set()
        return await pending.future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._slots.acquire()
            lone_request_on_idle_model = self._running == 0 and len(self._queue) == 1
            if not lone_request_on_idle_model and self.max_wait_s and self._queued_rows() < self.max_batch_size:
                await self._gather_for(self.max_wait_s)
            batch = self._take_batch()
            if not batch:
                self._slots.release()
                continue
            self._running += 1
            loop.create_task(self._serve_and_release(batch))

    async def _serve_and_release(self, batch: list[_Pending]) -> None:
        try:
            await self._serve(batch)
        finally:
            self._running -= 1
            self._slots.release()

    def _queued_rows(self) -> int:
        return sum(p.rows for p in self._queue)

    async def _gather_for(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._queued_rows() < self.max_batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take_batch(self) -> list[_Pending]:
        """The oldest request plus those after it with the same input layout, up to the row cap."""
        if not self._queue:
            return []
        first = self._queue.popleft()
        batch, rows, kept = [first], first.rows, deque()
        while self._queue:
            item = self._queue.popleft()
            if item.layout == first.layout and rows + item.rows <= self.max_batch_size:
                batch.append(item)
                rows += item.rows
            else:
                kept.append(item)
        self._queue.extendleft(reversed(kept))
        return [p for p in batch if not p.future.cancelled()]

    async def _serve(self, batch: list[_Pending]) -> None:
        if len(batch) == 1:
            await self._serve_alone(batch[0])
            return
        # This runs in the batch's own task, so setting the deadline here touches no other batch.
        deadlines = [p.deadline for p in batch if p.deadline is not None]
        request_deadline.set(min(deadlines) if deadlines else None)
        for pending in batch:
            pending.started(len(batch))
        names = list(batch[0].inputs)
        joined = {name: np.concatenate([p.inputs[name] for p in batch]) for name in names}
        try:
            outputs = await self._predict(joined)
            self.batches += 1
            self.batched_requests += len(batch)
            total = sum(p.rows for p in batch)
            bounds = np.cumsum([p.rows for p in batch])[:-1]
            parts = {}
            for name, array in outputs.items():
                array = np.asarray(array)
                if array.ndim == 0 or array.shape[0] != total:
                    raise ValueError(f"output '{name}' has {array.shape[0] if array.ndim else 0} rows for {total} input rows")
                parts[name] = np.split(array, bounds)
        except Exception:
            for pending in batch:  # find out which request is at fault, without blaming the others
                await self._serve_alone(pending)
            return
        for i, pending in enumerate(batch):
            if not pending.future.done():
                pending.future.set_result({name: split[i] for name, split in parts.items()})

    async def _serve_alone(self, pending: _Pending) -> None:
        request_deadline.set(pending.deadline)
        pending.started(1)
        try:
            result = await self._predict(pending.inputs)
        except Exception as exc:  # delivered to the caller, who maps it to a status
            if not pending.future.done():
                pending.future.set_exception(exc)
            return
        if not pending.future.done():
            pending.future.set_result(result)
