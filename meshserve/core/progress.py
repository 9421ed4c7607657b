"""A progress line for long work on the terminal: done / total, rate and time left."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int | None, what: str, stream=None, every_s: float = 0.5):
        self.total = total
        self.what = what
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.done = 0
        self._started = time.monotonic()
        self._shown_at = self._started
        self._live = self.stream.isatty()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._shown_at >= self.every_s:
            self._shown_at = now
            self._show(final=False)

    def finish(self) -> None:
        self._show(final=True)

    def _show(self, final: bool) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = self.done / elapsed
        line = f"{self.what}: {self.done:,}"
        if self.total:
            line += f" / {self.total:,} ({100 * self.done / self.total:.0f}%)"
        line += f", {rate:,.0f}/s"
        if self.total and not final and rate > 0:
            line += f", {max(self.total - self.done, 0) / rate:.0f} s left"
        if final:
            line += f", {elapsed:.1f} s"
        if self._live:
            self.stream.write("\r" + line + ("\n" if final else ""))
        elif final or self.done:
            self.stream.write(line + "\n")
        self.stream.flush()
