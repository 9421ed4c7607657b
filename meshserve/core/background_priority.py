"""Background work yields the CPU to serving.

The recorder and the judges (drift checks, comparisons, quality) share the machine with the
processes that answer requests; on a busy machine every millisecond they take is a millisecond
an answer waits. They lower their own priority by the `background_nice` setting, so the kernel
gives them what serving leaves. Linux keeps a nice value per thread, so a thread of a serving
process can step back alone.
"""

from __future__ import annotations

import logging
import os
import threading

from meshserve.core.settings import get_settings

log = logging.getLogger("meshserve.priority")


def lower_this_thread() -> None:
    """Lower the calling thread's CPU priority by `background_nice` (the whole process when it is
    the main thread of a process that has no other threads yet)."""
    step = get_settings().background_nice
    if step <= 0:
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + step))
    except (OSError, AttributeError) as exc:  # not Linux, or not permitted: run at the same priority
        log.info("background work keeps serving's CPU priority (%s)", exc)
