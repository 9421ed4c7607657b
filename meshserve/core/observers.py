"""Observers: what watches each inference from the side (records, spans, metrics, statistics).

The router and the adapters build one `InferenceEvent` per inference with what they know and
hand it to their `Observers`. An observer never delays or fails the answer: by default it
runs after the response is on its way (scheduled on the event loop, not awaited), and an
observer that raises is logged and skipped. The one exception is an observer whose work a
promise depends on before the client may see the answer (a prediction record must reach
local disk first); it sets `before_answer = True`, is awaited, and must be quick. Such an
observer may refuse the answer by raising a `MeshError` (compliance mode: no answer that
cannot be recorded); anything else it raises is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from meshserve.core.datatypes import Tensors
from meshserve.core.errors import MeshError
from meshserve.core.mesh_protocol import CallInfo

log = logging.getLogger("meshserve.observers")


@dataclass
class InferenceEvent:
    """One inference as one side of the mesh saw it."""

    side: str  # "router" or "adapter"
    call: CallInfo
    model: str
    version: str  # the version that answered ("" when the router refused before choosing one)
    started_at: float = field(default_factory=time.time)  # wall clock, seconds since the epoch
    inputs: Tensors | None = None  # decoded inputs, where this side decoded them
    outputs: Tensors | None = None  # decoded outputs, where this side has them
    batch_size: int | None = None  # requests in the predict call that served this one, when micro-batched
    code: grpc.StatusCode = grpc.StatusCode.OK
    error: str = ""  # the message sent with a non-OK code
    shed: bool = False  # refused because the mesh was at capacity for it (Envoy's limits), not failed
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds (decode, queue, predict, ...)

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, MeshError):
            self.code, self.error = exc.code, exc.message
        elif isinstance(exc, asyncio.CancelledError):  # the caller went away (or its deadline passed) mid-work
            self.code, self.error = grpc.StatusCode.CANCELLED, "the caller cancelled the call before its answer"
        else:
            self.code, self.error = grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"


class Observer(Protocol):
    before_answer: bool  # True only when a promise needs the work done before the client sees the answer

    def observe(self, event: InferenceEvent) -> None | asyncio.Future: ...


class Observers:
    """The observers of one server, called for every inference it answers or refuses."""

    def __init__(self, observers: Iterable[Observer] = ()):
        self._before = [o for o in observers if getattr(o, "before_answer", False)]
        self._after = [o for o in observers if not getattr(o, "before_answer", False)]

    def __bool__(self) -> bool:
        return bool(self._before or self._after)

    @contextlib.asynccontextmanager
    async def observing(self, event: InferenceEvent) -> AsyncIterator[InferenceEvent]:
        """Time the inference inside, note how it failed, and tell the observers either way."""
        started = time.perf_counter()
        try:
            yield event
        except BaseException as exc:
            event.failed(exc)
            raise
        finally:
            event.timings["total"] = time.perf_counter() - started
            if self:
                await self.notify(event)

    async def notify(self, event: InferenceEvent) -> None:
        for observer in self._before:
            try:
                result = observer.observe(event)
                if asyncio.isfuture(result) or asyncio.iscoroutine(result):
                    await result
            except MeshError:
                raise
            except Exception:
                log.exception("observer %s failed on request %s", type(observer).__name__, event.call.request_id)
        if self._after:
            asyncio.get_running_loop().call_soon(self._run_after, event)

    def _run_after(self, event: InferenceEvent) -> None:
        for observer in self._after:
            try:
                result = observer.observe(event)
                if asyncio.iscoroutine(result):
                    asyncio.ensure_future(result)
            except Exception:
                log.exception("observer %s failed on request %s", type(observer).__name__, event.call.request_id)
