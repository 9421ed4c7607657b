"""The recorder: moves records from the spools of every process into the store.

    python -m meshserve.sidecars.records.recorder --spool DIR --store URL [--retention-days N]

`meshserve up` runs one per mesh, supervised like the other processes. It is never on a
request's path: servers write their spools whether it runs or not, and it catches up when it
comes back. Each pass reads every spool file from its committed offset, stores what it read
and the new offsets in one transaction, then deletes the files that are consumed and finished.
With `--front-log` it also records what Envoy's front answered itself (front_refusals.py).
Retention (days and/or bytes, from meshserve.yaml) is applied every minute. With `--drift PLAN`
it also runs the drift monitor (sidecars/drift/monitor.py) in a thread of its own with its own
connection to the store, so a check never delays moving records.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import urllib.request
import sys
import time
from pathlib import Path

from meshserve.core.background_priority import lower_this_thread
from meshserve.core.mesh_protocol import RECORDER_READY as READY_LINE
from meshserve.core.settings import get_settings
from meshserve.observability.metrics import RECORDS_NOT_STORED, serve_metrics
from meshserve.sidecars.records.front_refusals import ROTATE_BYTES, read_lines
from meshserve.sidecars.records.spool import read_frames, spool_files, writer_alive
from meshserve.sidecars.records.store import RecordStore, open_store, redacted

log = logging.getLogger("meshserve.recorder")

BATCH_RECORDS = 2000
RETENTION_EVERY_S = 60.0


class Recorder:
    def __init__(self, spool_dir: Path, store: RecordStore, retention_days: float | None = None,
                 retention_bytes: int | None = None, source: str = "", front_log: Path | None = None,
                 envoy_admin: str | None = None):
        self.spool_dir = Path(spool_dir)
        # Spool file names repeat across pods (same label, same small pid in a fresh pid
        # namespace); recorders sharing one store keep their offsets apart under their source.
        self.source = source
        self.store = store
        self.retention_days = retention_days
        self.retention_bytes = retention_bytes
        self.stored = 0
        self._retention_at = 0.0
        self.front_log = Path(front_log) if front_log else None
        self.envoy_admin = envoy_admin  # asked to reopen its logs once the front log is renamed

    def drain_once(self) -> int:
        """One pass over every spool file; returns how many records it stored."""
        files = spool_files(self.spool_dir)
        offsets = self.store.offsets()
        newest_seq: dict[tuple[str, int], int] = {}
        for f in files:
            newest_seq[f.writer] = max(newest_seq.get(f.writer, 0), f.seq)
        moved = 0
        finished_and_read: list[Path] = []
        for f in files:
            key = self._key(f.path)
            start = offsets.get(key, 0)
            # Decided before reading: a file finished then can gain nothing after the read below.
            finished = f.seq < newest_seq[f.writer] or not writer_alive(f.pid)
            while True:
                entries: dict[str, list[dict]] = {"record": [], "package": [], "loss": []}
                position = start
                for position, item in read_frames(f.path, start):
                    entries.get(item.get("kind", "record"), entries["record"]).append(item)
                    if sum(map(len, entries.values())) >= BATCH_RECORDS:
                        break
                if position == start:
                    break
                records = entries["record"]
                self.store.ingest(records, entries["package"], {key: position}, losses=entries["loss"])
                moved += len(records)
                start = position
            if finished:
                finished_and_read.append(f.path)
        for path in finished_and_read:
            path.unlink(missing_ok=True)
        if finished_and_read:
            self.store.forget_offsets(self._key(p) for p in finished_and_read)
        moved += self._drain_front_log()
        self.stored += moved
        return moved

    def _drain_front_log(self) -> int:
        """Records of Envoy's own answers; the log is renamed (and Envoy reopens it) once it is
        large and read to its end, and the renamed file deleted once read and replaced."""
        if self.front_log is None:
            return 0
        old = self.front_log.with_name(self.front_log.name + ".1")
        moved = 0
        if old.exists():
            moved += self._drain_lines(old)
            if self.front_log.exists():  # Envoy writes to the new file: the old one is complete
                old.unlink(missing_ok=True)
                self.store.forget_offsets([self._key(old)])
        moved += self._drain_lines(self.front_log)
        size = self.front_log.stat().st_size if self.front_log.exists() else 0
        if size > ROTATE_BYTES and not old.exists() and self.envoy_admin \
                and self.store.offsets().get(self._key(self.front_log)) == size:
            os.replace(self.front_log, old)
            self.store.ingest([], [], {self._key(old): size, self._key(self.front_log): 0})
            try:
                urllib.request.urlopen(urllib.request.Request(f"http://{self.envoy_admin}/reopen_logs",
                                                              method="POST"), timeout=5).close()
            except OSError as exc:
                log.warning("recorder: Envoy did not reopen its logs (%s); it will be asked again", exc)
        return moved

    def _drain_lines(self, path: Path) -> int:
        key = self._key(path)
        start = self.store.offsets().get(key, 0)
        if path.exists() and path.stat().st_size < start:
            start = 0  # a new file under the old name
        moved = 0
        while True:
            records, position = [], start
            for position, record in read_lines(path, start):
                if record is not None:
                    records.append(record)
                if len(records) >= BATCH_RECORDS:
                    break
            if position == start:
                return moved
            self.store.ingest(records, [], {key: position})
            moved += len(records)
            start = position

    def _key(self, path: Path) -> str:
        return f"{self.source}/{path.name}" if self.source else path.name

    def apply_retention(self) -> None:
        now = time.time()
        if now - self._retention_at < RETENTION_EVERY_S:
            return
        self._retention_at = now
        if self.retention_days is not None:
            removed = self.store.delete_older_than(now - self.retention_days * 86400)
            if removed:
                log.info("retention: removed %d records older than %g days", removed, self.retention_days)
        if self.retention_bytes is not None:
            while self.store.size_bytes() > self.retention_bytes:
                total = self.store.count()
                if not total or not self.store.delete_oldest(max(1, total // 10)):
                    break

    def run(self, stop: list[bool], idle_s: float = 0.1) -> None:
        while not stop:
            try:
                moved = self.drain_once()
                self.apply_retention()
            except Exception as exc:  # a store that is down: keep the spools, try again
                RECORDS_NOT_STORED.inc()
                log.error("recorder: %s: %s; records stay spooled, trying again in 2 s", type(exc).__name__, exc)
                time.sleep(2.0)
                continue
            if not moved:
                time.sleep(idle_s)
        self.drain_once()  # what was spooled before the stop request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meshserve recorder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spool", required=True, help="folder of the spool files")
    parser.add_argument("--store", required=True, help="sqlite:///PATH or postgresql://...")
    parser.add_argument("--retention-days", type=float, default=None)
    parser.add_argument("--retention-bytes", type=int, default=None)
    parser.add_argument("--source", default="", help="unique name of this spool folder (e.g. the pod) when several "
                        "recorders share one store")
    parser.add_argument("--drift", default=None, help="drift plan (JSON) to check periodically")
    parser.add_argument("--front-log", default=None, help="Envoy's log of the inferences its front answered itself")
    parser.add_argument("--envoy-admin", default=None, help="HOST:PORT of Envoy's admin, to reopen that log")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    lower_this_thread()  # before any other thread starts, so the drift monitor's inherits it
    if get_settings().metrics_listen:  # `meshserve up` gives it a port: store failures, and drift scores when checked
        serve_metrics(get_settings().metrics_listen)
    while True:
        try:
            store = open_store(args.store)
            break
        except Exception as exc:
            if stop:
                return 0
            RECORDS_NOT_STORED.inc()
            print(f"meshserve recorder: cannot open the store {redacted(args.store)} ({exc}); retrying in 2 s",
                  flush=True)
            time.sleep(2.0)
    Path(args.spool).mkdir(parents=True, exist_ok=True)
    print(f"{READY_LINE}: {args.spool} -> {redacted(store.url)}", flush=True)
    drift = _start_drift_monitor(args.store, args.drift)
    Recorder(Path(args.spool), store, args.retention_days, args.retention_bytes, source=args.source,
             front_log=args.front_log, envoy_admin=args.envoy_admin).run(stop)
    if drift is not None:
        drift.stop()
    store.close()
    return 0


def _start_drift_monitor(store_url: str, plan_path: str | None):
    if plan_path is None:
        return None
    from meshserve.sidecars.drift.api import MonitorThread

    return MonitorThread.start(store_url, Path(plan_path))


if __name__ == "__main__":
    sys.exit(main())
