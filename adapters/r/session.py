"""The one thread in this process that talks to embedded R.

Embedded R is not thread-safe (concurrent calls from threads crash it), so every R call in
the process goes through `RSession.call`, which runs it on a single dedicated thread under
`localconverter(default_converter + numpy2ri.converter)`. Concurrency comes from processes.

The thread gets a large C stack and R's C-stack check is pointed at it. rpy2 turns that check
off, and without it deep recursion in R walks off the end of the stack and kills the process;
with it R raises its usual "C stack usage is too close to the limit" error and stays usable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import logging
import os
import queue
import signal
import threading
from typing import Any, Callable

# Virtual address space only; pages are committed as R recursion actually touches them.
R_THREAD_STACK_BYTES = 256 * 1024 * 1024
# R raises its stack error when usage passes this fraction, leaving room to unwind and report.
R_STACK_USABLE_FRACTION = 0.9


class RStartError(RuntimeError):
    """Embedded R could not start here (R or rpy2 missing or broken): a set-up problem, not a model's."""


class RSession:
    """Runs callables on the R thread, starting R there on first use."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        self._ensure_thread()
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((future, fn, args))
        return future

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.wrap_future(self.submit(fn, *args))

    def call_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.submit(fn, *args).result()

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            previous = threading.stack_size(R_THREAD_STACK_BYTES)
            try:
                self._thread = threading.Thread(target=self._run, name="embedded-R", daemon=True)
                self._thread.start()
            finally:
                threading.stack_size(previous)
            started: concurrent.futures.Future = concurrent.futures.Future()
            self._jobs.put((started, lambda: None, ()))
            started.result()  # R is up (or failed to start, reported on every call)
        _restore_python_sigint()

    def _run(self) -> None:
        init_error: BaseException | None = None
        converter = None
        try:
            _start_r_on_this_thread()
            from rpy2.robjects import default_converter, numpy2ri
            from rpy2.robjects.conversion import localconverter

            converter = default_converter + numpy2ri.converter
        except BaseException as exc:  # reported to every caller instead of hanging them
            init_error = exc
        if init_error is not None:
            while True:
                future, _, _ = self._jobs.get()
                if future.set_running_or_notify_cancel():
                    future.set_exception(RStartError(f"embedded R could not start: {init_error}"))
        # Entered once for the thread's life: entering it builds a new converter, which per call
        # was a tenth of a one-row prediction (4.4 against 4.0 ms, alternated in one process).
        with localconverter(converter):
            while True:
                future, fn, args = self._jobs.get()
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    result = fn(*args)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)


def _start_r_on_this_thread() -> None:
    import warnings

    logging.getLogger("rpy2").setLevel(logging.WARNING)  # its start-up chatter is not news

    with warnings.catch_warnings():
        # rpy2 warns that R was not started on the main thread; that is the point here,
        # and the main thread's SIGINT handler is put back by _restore_python_sigint.
        warnings.simplefilter("ignore")
        import rpy2.rinterface as rinterface

        # R puts its own and the system's library folders first on LD_LIBRARY_PATH. This
        # process has loaded its libraries already, but any Python started from it later
        # would pick up the system's libraries before its own (its ssl module then fails).
        library_path = os.environ.get("LD_LIBRARY_PATH")
        rinterface.initr_simple()
        if library_path is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = library_path
        import rpy2.robjects  # noqa: F401  (sets up robjects on this thread)
    _send_r_console_to_logging()
    _point_r_stack_check_at_this_thread()
    _stop_r_calling_python_for_events()


def _send_r_console_to_logging() -> None:
    # R prints warnings and errors to its console; errors also reach the caller as exceptions,
    # so the console goes to a logger instead of interleaving with the adapter's output.
    from rpy2.rinterface_lib import callbacks

    console = logging.getLogger("meshserve.adapters.r.console")
    callbacks.consolewrite_print = lambda text: console.info("%s", text.rstrip())
    callbacks.consolewrite_warnerror = lambda text: console.info("%s", text.rstrip())


def _stop_r_calling_python_for_events() -> None:
    # R asks for window-system events (R_ProcessEvents) each time it checks for an interrupt,
    # about 10 times in a one-row randomForest prediction, and rpy2 answers in Python: each
    # time the R thread must take the GIL from the event loop. With a busy Python thread beside
    # it a one-row call took 65 ms, against 35 ms without the callback. A server has no windows,
    # and R never sees SIGINT here (_restore_python_sigint), so nothing is lost.
    from rpy2.rinterface_lib import openrlib

    openrlib.rlib.ptr_R_ProcessEvents = openrlib.ffi.NULL


def _point_r_stack_check_at_this_thread() -> None:
    from rpy2.rinterface_lib import openrlib

    low, size = _current_thread_stack()
    if not size:
        return  # unknown stack: leave rpy2's setting alone
    rlib, ffi = openrlib.rlib, openrlib.ffi
    rlib.R_CStackStart = ffi.cast("uintptr_t", low + size)  # stacks grow down on Linux
    rlib.R_CStackLimit = ffi.cast("uintptr_t", int(size * R_STACK_USABLE_FRACTION))


def _current_thread_stack() -> tuple[int, int]:
    try:
        libc = ctypes.CDLL(None)
        libc.pthread_self.restype = ctypes.c_ulong
        attr = ctypes.create_string_buffer(256)  # pthread_attr_t is 56 bytes on glibc
        if libc.pthread_getattr_np(ctypes.c_ulong(libc.pthread_self()), attr) != 0:
            return 0, 0
        low, size = ctypes.c_void_p(), ctypes.c_size_t()
        libc.pthread_attr_getstack(attr, ctypes.byref(low), ctypes.byref(size))
        libc.pthread_attr_destroy(attr)
        return int(low.value or 0), int(size.value)
    except (OSError, AttributeError):
        return 0, 0


def _restore_python_sigint() -> None:
    # Starting R may take over SIGINT at the C level; re-installing Python's handler from the
    # main thread keeps Ctrl-C and the adapter's own signal handling working.
    if threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGINT)
    if handler is not None:
        signal.signal(signal.SIGINT, handler)


_session: RSession | None = None
_session_lock = threading.Lock()


def r_session() -> RSession:
    """The process's R session (R itself can be embedded only once per process)."""
    global _session
    with _session_lock:
        if _session is None:
            _session = RSession()
        return _session
