"""How long to wait before restarting a process that died: the one policy of the mesh.

A process that keeps crashing soon after it starts waits longer each time (doubling up to a
cap), so a broken model does not spin a core; one that then runs healthily for a while is
forgiven, and its next crash is restarted after the first, short delay again.
"""

from __future__ import annotations

import time


class RestartPolicy:
    def __init__(self, first_s: float, max_s: float, healthy_after_s: float = 30.0, clock=time.monotonic):
        self.first_s = first_s
        self.max_s = max_s
        self.healthy_after_s = healthy_after_s
        self._clock = clock
        self._next_s = first_s
        self._up_since: float | None = None

    def up(self) -> None:
        """The process is serving (again)."""
        self._up_since = self._clock()

    def delay_after_exit(self) -> float:
        """The process died (or failed to come up): seconds to wait before starting it again."""
        if self._up_since is not None and self._clock() - self._up_since >= self.healthy_after_s:
            self._next_s = self.first_s
        self._up_since = None
        delay = self._next_s
        self._next_s = min(self._next_s * 2, self.max_s)
        return delay
