"""Background work (the recorder, the router's judging passes) steps back from serving's CPU by the
`background_nice` setting, one thread at a time, never the serving threads beside it."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from meshserve.core.background_priority import lower_this_thread
from meshserve.core.settings import get_settings


def _priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_a_judging_thread_runs_at_background_priority_while_its_process_keeps_serving_priority():
    serving = _priority()
    with ThreadPoolExecutor(1, initializer=lower_this_thread) as judges:
        judged = judges.submit(_priority).result()
    assert judged == min(19, serving + get_settings().background_nice)
    assert _priority() == serving  # the thread that serves is untouched


def test_background_nice_zero_keeps_the_same_priority(monkeypatch):
    monkeypatch.setattr(get_settings(), "background_nice", 0)
    serving = _priority()
    with ThreadPoolExecutor(1, initializer=lower_this_thread) as judges:
        assert judges.submit(_priority).result() == serving
