"""The ledger of records a process could not write: counted, logged, alarmed and stored.

A record that cannot be spooled (the disk is full or read-only, the folder is gone, the
spool is at its bound because the recorder is down) is never lost silently. Each one is
counted in `meshserve_records_lost_total{side, model, version, reason}`; while losses grow
the log says so with the running total at least every LOG_EVERY_S, and once more when
recording resumes. Once the spool takes records again, the ledger writes what it counted as
`loss` entries into the spool itself, so the store (and `meshserve records losses`) knows
the true total of every process, including processes that have since exited.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter as PrometheusCounter

log = logging.getLogger("meshserve.records")

LOG_EVERY_S = 10.0

RECORDS_LOST = PrometheusCounter(
    "meshserve_records_lost", "Prediction records that could not be written, by why (disk_full, read_only, "
    "not_permitted, folder_missing, spool_full, write_error, unserializable).",
    ("side", "model", "version", "reason"))


@dataclass
class LossLedger:
    """Losses of one writer, from the first refusal until the spool has taken their account."""

    side: str
    writer: str
    total: int = 0  # every loss since the process started
    unreported: Counter = field(default_factory=Counter)  # (model, version, reason) -> count, not yet spooled
    first_at: float | None = None
    last_at: float | None = None
    _logged_at: float = 0.0
    _logged_total: int = 0
    losing: bool = False

    def lost(self, model: str, version: str, reason: str, detail: str) -> None:
        RECORDS_LOST.labels(self.side, model, version, reason).inc()
        now = time.time()
        self.total += 1
        self.unreported[(model, version, reason)] += 1
        self.first_at = self.first_at or now
        self.last_at = now
        if not self.losing or time.monotonic() - self._logged_at >= LOG_EVERY_S:
            self._log(f"records are being lost ({reason}): {self.total} lost so far by {self.writer}; {detail}")
        self.losing = True

    def _log(self, message: str) -> None:
        self._logged_at, self._logged_total = time.monotonic(), self.total
        log.error(message)

    def resumed(self) -> None:
        """A record was written again after losses: say so once, with the final count."""
        if self.losing:
            self.losing = False
            log.warning("recording resumed for %s: %d records lost in all (%d since the last report)",
                        self.writer, self.total, self.total - self._logged_total)
            self._logged_total = self.total

    def tick(self) -> None:
        """Called now and then: the running total while losses grow, and a last word once they stop."""
        if not self.losing or time.monotonic() - self._logged_at < LOG_EVERY_S:
            return
        if self.last_at is not None and time.time() - self.last_at < LOG_EVERY_S:
            self._log(f"records are still being lost: {self.total} lost so far by {self.writer}")
        else:
            self.losing = False
            log.warning("no record lost by %s in the last %g s: %d lost in all", self.writer, LOG_EVERY_S, self.total)
            self._logged_total = self.total

    def entries(self, pid: int) -> list[dict[str, Any]]:
        """The unreported losses as spool entries; `taken` once they are written."""
        return [{"kind": "loss", "writer": self.writer, "pid": pid, "side": self.side, "model": model,
                 "version": version, "reason": reason, "count": count, "first_at": self.first_at,
                 "last_at": self.last_at} for (model, version, reason), count in sorted(self.unreported.items())]

    def taken(self, entry: dict[str, Any]) -> None:
        key = (entry["model"], entry["version"], entry["reason"])
        self.unreported[key] -= entry["count"]
        if self.unreported[key] <= 0:
            del self.unreported[key]
        if not self.unreported:
            self.first_at = self.last_at = None
