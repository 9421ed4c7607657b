"""Child processes that end with their parent, even when the parent is killed with SIGKILL.

On Linux the kernel sends the child a signal when its parent exits (PR_SET_PDEATHSIG).
`die_with_parent` is meant as a `preexec_fn` or to be called first thing in a forked child;
libc is resolved at import, because a forked child of a threaded process must not load
libraries. Elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1

try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(sig))
