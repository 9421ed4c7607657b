"""Where records live: SQLite (embedded, WAL mode, no server) or PostgreSQL (several meshes, one database).

One schema and the same SQL for both; `open_store(url)` picks by the URL's scheme:
`sqlite:///path/records.db` or `postgresql://user@host:port/db`.

Exactly once: the recorder commits a batch of records together with how far it has read each
spool file, in one transaction, so a recorder killed at any point re-reads only what it had not
committed. Records are keyed by (request_id, slot); a second record for the same key replaces
the first only when it ranks at least as high (an answer over an error, the adapter's own
record over the router's), which also makes a re-read harmless.

Everything outside this module reads and writes through the public methods below; the reads
that serve people (the console, the CLI, the control API) are bounded: a time window of at most
MAX_WINDOW_S cut into at most MAX_BUCKETS steps, and pages of at most MAX_PAGE records, so one
query cannot tie up the database for the mesh's own recorder. The drift monitor's state
(`drift_status`, `drift_alerts`) lives here too, beside the records it is computed from.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson

from meshserve.sidecars.records.spool import BODY_FIELDS
from meshserve.spec.run_folder import RecordsFolder

MAX_PAGE = 500  # records in one page a reader asks for
MAX_WINDOW_S = 31 * 86400.0  # the longest time window one aggregate covers
MAX_BUCKETS = 720  # steps a window is cut into (an hour at 5 s)
# Upper bounds (seconds) of the latency bins the series are counted in; percentiles are read off
# them as Prometheus reads a histogram, so the database returns counts, never every latency.
LATENCY_BOUNDS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
                  0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

COLUMNS = ("request_id", "slot", "rank", "time", "side", "model", "version", "role", "digest",
           "training_data_sha256", "code_revision", "trace_id", "code", "error", "latency_s", "batch_size", "body")

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS records (
        request_id TEXT NOT NULL, slot TEXT NOT NULL, rank INTEGER NOT NULL, time DOUBLE PRECISION NOT NULL,
        side TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, role TEXT NOT NULL, digest TEXT NOT NULL,
        training_data_sha256 TEXT NOT NULL, code_revision TEXT NOT NULL, trace_id TEXT NOT NULL,
        code TEXT NOT NULL, error TEXT NOT NULL, latency_s DOUBLE PRECISION NOT NULL, batch_size INTEGER,
        body TEXT NOT NULL, explanation TEXT,
        PRIMARY KEY (request_id, slot))""",
    "CREATE INDEX IF NOT EXISTS records_by_model_time ON records (model, version, time)",
    "CREATE INDEX IF NOT EXISTS records_by_model_and_time ON records (model, time, request_id, slot)",
    "CREATE INDEX IF NOT EXISTS records_by_time ON records (time)",
    "CREATE INDEX IF NOT EXISTS records_by_trace ON records (trace_id)",
    """CREATE TABLE IF NOT EXISTS packages (
        digest TEXT PRIMARY KEY, model TEXT NOT NULL, version TEXT NOT NULL, body TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS spool_offsets (file TEXT PRIMARY KEY, position BIGINT NOT NULL)",
    # Records a process could not write (spool refused by the disk, or at its bound), as it counted them.
    """CREATE TABLE IF NOT EXISTS record_losses (
        writer TEXT NOT NULL, pid INTEGER NOT NULL, side TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
        reason TEXT NOT NULL, count BIGINT NOT NULL, first_at DOUBLE PRECISION, last_at DOUBLE PRECISION)""",
    # Ground truth: what really happened, reported later by request id; the latest report wins.
    """CREATE TABLE IF NOT EXISTS outcomes (
        request_id TEXT PRIMARY KEY, time DOUBLE PRECISION NOT NULL, reported_at DOUBLE PRECISION NOT NULL,
        body TEXT NOT NULL)""",
    # The drift monitor's latest check of each column, and its alerts from raised to cleared
    # (sidecars/drift/drift_tables.py says what each holds).
    """CREATE TABLE IF NOT EXISTS drift_status (
        model TEXT NOT NULL, version TEXT NOT NULL, role TEXT NOT NULL, tensor TEXT NOT NULL, feature TEXT NOT NULL,
        window_kind TEXT NOT NULL, checked_at DOUBLE PRECISION NOT NULL, row_count INTEGER NOT NULL,
        score DOUBLE PRECISION, threshold DOUBLE PRECISION NOT NULL, p_value DOUBLE PRECISION,
        alerting INTEGER NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (model, version, role, tensor, feature, window_kind))""",
    """CREATE TABLE IF NOT EXISTS drift_alerts (
        model TEXT NOT NULL, version TEXT NOT NULL, role TEXT NOT NULL, tensor TEXT NOT NULL, feature TEXT NOT NULL,
        window_kind TEXT NOT NULL, raised_at DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL,
        cleared_at DOUBLE PRECISION, score DOUBLE PRECISION NOT NULL, threshold DOUBLE PRECISION NOT NULL,
        p_value DOUBLE PRECISION, row_count INTEGER NOT NULL, message TEXT NOT NULL,
        PRIMARY KEY (model, version, role, tensor, feature, window_kind, raised_at))""",
]

DRIFT_KEY = ("model", "version", "role", "tensor", "feature", "window_kind")


class QueryOutOfBounds(ValueError):
    """A read asked for more than the store answers at once (a window, a step or a page too large)."""


def checked_window(since: float, until: float, step_s: float | None = None) -> None:
    """Raise QueryOutOfBounds unless [SINCE, UNTIL) is a window the store aggregates in one query."""
    if not (until > since):
        raise QueryOutOfBounds(f"the window's end ({until}) must come after its start ({since})")
    if until - since > MAX_WINDOW_S:
        raise QueryOutOfBounds(f"a window of {until - since:.0f} s is longer than the {MAX_WINDOW_S:.0f} s "
                               "one query covers; ask for a shorter window")
    if step_s is not None and (step_s <= 0 or (until - since) / step_s > MAX_BUCKETS):
        raise QueryOutOfBounds(f"a step of {step_s:g} s cuts the window into more than {MAX_BUCKETS} steps; "
                               "ask for a longer step")


def checked_page(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise QueryOutOfBounds(f"a page of {limit} records is outside 1..{MAX_PAGE}; ask for at most {MAX_PAGE}")
    return int(limit)


# A record's key, in the order records are read in: (column, its name in a row).
RECORD_KEY = [("time", "time"), ("request_id", "request_id"), ("slot", "slot")]


def rank_of(record: dict[str, Any]) -> int:
    return 2 * (record["code"] == "OK") + (record["side"] == "adapter")


def row_of(record: dict[str, Any]) -> tuple:
    """A record as the row stored; a record read from a spool brings its body as JSON already."""
    body = record.get("body")
    if not isinstance(body, str):
        body = orjson.dumps({f: record.get(f) for f in BODY_FIELDS}, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    values = {**record, "rank": rank_of(record), "body": body}
    return tuple(values.get(c) for c in COLUMNS)


def record_of(row: dict[str, Any]) -> dict[str, Any]:
    record = {k: v for k, v in row.items() if k not in ("body", "rank", "explanation")}
    record.update(orjson.loads(row["body"]))
    record["explanation"] = json.loads(row["explanation"]) if row.get("explanation") else None
    return record


class RecordStore:
    """The SQL both databases share; subclasses connect and translate placeholders."""

    placeholder = "?"
    # A step number from a non-negative quotient: SQLite's CAST truncates, PostgreSQL's rounds.
    floor_sql = "CAST({} AS INTEGER)"
    url: str

    def _execute(self, sql: str, params: Iterable = ()):  # pragma: no cover - per database
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    def _rows(self, sql: str, params: Iterable = ()) -> list[dict[str, Any]]:
        cursor = self._execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def pages(self, select: str, where: list[str], params: list, key: list[tuple[str, str]],
              descending: bool = False, batch: int = 1000, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Rows of `SELECT ... WHERE` (WHERE's clauses joined by AND) in KEY's order, BATCH at a time.

        KEY: (column as the SQL names it, as the row names it), unique together. Each page starts
        after the last row of the one before, by key: OFFSET would read, and sort, every row it
        skips again for each page, which made reading 20,000 records take seconds.
        """
        direction, after = ("DESC", "<") if descending else ("ASC", ">")
        order = ", ".join(f"{column} {direction}" for column, _ in key)
        seen, last = 0, None
        while limit is None or seen < limit:
            size = batch if limit is None else min(batch, limit - seen)
            clauses, values = list(where), list(params)
            if last is not None:
                clauses.append(f"({', '.join(c for c, _ in key)}) {after} ({', '.join('?' * len(key))})")
                values += last
            rows = self._rows(self._q(f"{select} WHERE {' AND '.join(clauses)} ORDER BY {order} LIMIT {int(size)}"),
                              values)
            if not rows:
                return
            yield from rows
            seen += len(rows)
            last = [rows[-1][name] for _, name in key]

    def ingest(self, records: list[dict], packages: list[dict], offsets: dict[str, int],
               losses: list[dict] = ()) -> None:
        """Store RECORDS, PACKAGES and LOSSES and advance the spool OFFSETS, all or nothing."""
        update = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("request_id", "slot"))
        insert = self._q(f"INSERT INTO records ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
                         f"ON CONFLICT (request_id, slot) DO UPDATE SET {update} WHERE excluded.rank >= records.rank")
        with self._transaction() as cursor:
            if records:
                cursor.executemany(insert, [row_of(r) for r in records])
            for package in packages:
                cursor.execute(self._q("INSERT INTO packages (digest, model, version, body) VALUES (?, ?, ?, ?) "
                                       "ON CONFLICT (digest) DO UPDATE SET body = excluded.body"),
                               (package["digest"], package["model"], package["version"], json.dumps(package)))
            for loss in losses:
                cursor.execute(self._q("INSERT INTO record_losses (writer, pid, side, model, version, reason, count, "
                                       "first_at, last_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                               tuple(loss.get(c) for c in ("writer", "pid", "side", "model", "version", "reason",
                                                           "count", "first_at", "last_at")))
            for file, position in offsets.items():
                cursor.execute(self._q("INSERT INTO spool_offsets (file, position) VALUES (?, ?) "
                                       "ON CONFLICT (file) DO UPDATE SET position = excluded.position"),
                               (file, position))

    def losses(self, since: float | None = None) -> list[dict[str, Any]]:
        """Records lost per model, version and reason (totals over every process), newest first."""
        where, params = ("WHERE last_at >= ?", [since]) if since is not None else ("", [])
        return self._rows(f"SELECT model, version, side, reason, SUM(count) AS count, MIN(first_at) AS first_at, "
                          f"MAX(last_at) AS last_at FROM record_losses {where} "
                          "GROUP BY model, version, side, reason ORDER BY MAX(last_at) DESC", params)

    def offsets(self) -> dict[str, int]:
        return {r["file"]: r["position"] for r in self._rows("SELECT file, position FROM spool_offsets")}

    def forget_offsets(self, files: Iterable[str]) -> None:
        with self._transaction() as cursor:
            for file in files:
                cursor.execute(self._q("DELETE FROM spool_offsets WHERE file = ?"), (file,))

    def records_for(self, request_id: str) -> list[dict[str, Any]]:
        rows = self._rows(self._q("SELECT * FROM records WHERE request_id = ? ORDER BY slot"), (request_id,))
        return [record_of(r) for r in rows]

    def package(self, digest: str) -> dict[str, Any] | None:
        rows = self._rows(self._q("SELECT body FROM packages WHERE digest = ?"), (digest,))
        return json.loads(rows[0]["body"]) if rows else None

    def count(self, model: str | None = None) -> int:
        sql, params = "SELECT COUNT(*) AS n FROM records", ()
        if model:
            sql, params = sql + " WHERE model = ?", (model,)
        return int(self._rows(self._q(sql), params)[0]["n"])

    def request_ids(self) -> set[tuple[str, str]]:
        return {(r["request_id"], r["slot"]) for r in self._rows("SELECT request_id, slot FROM records")}

    def query(self, model: str, version: str | None = None, since: float | None = None, until: float | None = None,
              role: str | None = None, limit: int | None = None, newest_first: bool = False,
              batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Records of MODEL in time order (or newest first), fetched BATCH at a time."""
        where, params = ["model = ?"], [model]
        for clause, value in (("version = ?", version), ("time >= ?", since), ("time < ?", until), ("role = ?", role)):
            if value is not None:
                where.append(clause)
                params.append(value)
        for row in self.pages("SELECT * FROM records", where, params, RECORD_KEY, newest_first, batch, limit):
            yield record_of(row)

    def count_matching(self, model: str, version: str | None = None, since: float | None = None,
                       until: float | None = None) -> int:
        where, params = ["model = ?"], [model]
        for clause, value in (("version = ?", version), ("time >= ?", since), ("time < ?", until)):
            if value is not None:
                where.append(clause)
                params.append(value)
        return int(self._rows(self._q(f"SELECT COUNT(*) AS n FROM records WHERE {' AND '.join(where)}"),
                              params)[0]["n"])

    def save_explanation(self, request_id: str, slot: str, explanation: dict) -> None:
        with self._transaction() as cursor:
            cursor.execute(self._q("UPDATE records SET explanation = ? WHERE request_id = ? AND slot = ?"),
                           (json.dumps(explanation), request_id, slot))

    def delete_older_than(self, cutoff: float) -> int:
        with self._transaction() as cursor:
            cursor.execute(self._q("DELETE FROM records WHERE time < ?"), (cutoff,))
            return cursor.rowcount

    def delete_oldest(self, count: int) -> int:
        with self._transaction() as cursor:
            cursor.execute(self._q("DELETE FROM records WHERE (request_id, slot) IN "
                                   "(SELECT request_id, slot FROM records ORDER BY time LIMIT ?)"), (count,))
            return cursor.rowcount

    def save_outcomes(self, outcomes: list[tuple[str, float, dict]]) -> tuple[set[str], set[str]]:
        """Store (request_id, time, {output: values}) outcomes; returns (the ids reported before,
        the ids with a recorded answer)."""
        if not outcomes:
            return set(), set()
        ids = [o[0] for o in outcomes]
        known = self._existing("outcomes", ids)
        recorded = self._existing("records", ids, "slot = 'answer'")
        reported_at = time.time()
        with self._transaction() as cursor:
            cursor.executemany(self._q(
                "INSERT INTO outcomes (request_id, time, reported_at, body) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (request_id) DO UPDATE SET time = excluded.time, reported_at = excluded.reported_at, "
                "body = excluded.body"),
                [(request_id, when, reported_at, json.dumps(values)) for request_id, when, values in outcomes])
        return known, recorded

    def _existing(self, table: str, ids: list[str], condition: str = "") -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            where = f"request_id IN ({', '.join('?' * len(chunk))})" + (f" AND {condition}" if condition else "")
            found |= {r["request_id"] for r in self._rows(self._q(f"SELECT request_id FROM {table} WHERE {where}"),
                                                          chunk)}
        return found

    def joined(self, model: str, since: float | None = None, until: float | None = None,
               batch: int = 1000, limit: int | None = None) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(record, outcome) for every record of MODEL (answers and shadow copies) whose request has an
        outcome; the first LIMIT of them when given."""
        where, params = ["r.model = ?", "r.code = 'OK'"], [model]
        for clause, value in (("r.time >= ?", since), ("r.time < ?", until)):
            if value is not None:
                where.append(clause)
                params.append(value)
        select = ("SELECT r.*, o.time AS outcome_time, o.body AS outcome_body FROM records r "
                  "JOIN outcomes o ON o.request_id = r.request_id")
        key = [("r.time", "time"), ("r.request_id", "request_id"), ("r.slot", "slot")]
        for row in self.pages(select, where, params, key, batch=batch, limit=limit):
            outcome = {"time": row.pop("outcome_time"), "values": json.loads(row.pop("outcome_body"))}
            yield record_of(row), outcome

    def shadow_pairs(self, model: str, since: float | None = None, until: float | None = None,
                     batch: int = 1000, limit: int | None = None) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(primary answer, shadow copy) of every request of MODEL that a shadow also answered (the newest
        LIMIT of them when given)."""
        where, params = ["s.model = ?", "s.slot LIKE 'shadow:%'", "p.slot = 'answer'", "p.side = 'adapter'"], [model]
        for clause, value in (("s.time >= ?", since), ("s.time < ?", until)):
            if value is not None:
                where.append(clause)
                params.append(value)
        names = ", ".join(f"p.{c} AS p_{c}" for c in COLUMNS) + ", " + ", ".join(f"s.{c} AS s_{c}" for c in COLUMNS)
        select = f"SELECT {names} FROM records s JOIN records p ON p.request_id = s.request_id"
        key = [("s.time", "s_time"), ("s.request_id", "s_request_id"), ("s.slot", "s_slot")]
        for row in self.pages(select, where, params, key, descending=bool(limit), batch=batch, limit=limit):
            yield (record_of({c: row[f"p_{c}"] for c in COLUMNS}), record_of({c: row[f"s_{c}"] for c in COLUMNS}))

    # -- aggregates over a bounded window, for the console's charts ---------------------------

    def _bucket(self) -> str:
        """SQL for the step a record's time falls in (parameters: window start, step length)."""
        return self.floor_sql.format("(time - ?) / ?")

    def traffic(self, model: str, since: float, until: float, step_s: float) -> list[dict[str, Any]]:
        """Records of MODEL in [SINCE, UNTIL) counted per (version, role, step, status code):
        rows {version, role, bucket, code, requests, row_count}; bucket k starts at SINCE + k * STEP_S."""
        checked_window(since, until, step_s)
        return self._rows(self._q(
            f"SELECT version, role, {self._bucket()} AS bucket, code, COUNT(*) AS requests, "
            "SUM(COALESCE(batch_size, 1)) AS row_count FROM records WHERE model = ? AND time >= ? AND time < ? "
            "GROUP BY version, role, bucket, code ORDER BY bucket"),
            (float(since), float(step_s), model, float(since), float(until)))

    def latency_bins(self, model: str, since: float, until: float, step_s: float) -> list[dict[str, Any]]:
        """Answered records of MODEL counted per (version, role, step, latency bin): rows {version,
        role, bucket, bin, n}; bin i holds latencies under LATENCY_BOUNDS[i] (the last, the rest)."""
        checked_window(since, until, step_s)
        bins = " ".join(f"WHEN latency_s < {bound!r} THEN {i}" for i, bound in enumerate(LATENCY_BOUNDS))
        return self._rows(self._q(
            f"SELECT version, role, {self._bucket()} AS bucket, CASE {bins} ELSE {len(LATENCY_BOUNDS)} END AS bin, "
            "COUNT(*) AS n FROM records WHERE model = ? AND time >= ? AND time < ? AND code = 'OK' "
            "GROUP BY version, role, bucket, bin"),
            (float(since), float(step_s), model, float(since), float(until)))

    def batch_sizes(self, model: str, since: float, until: float) -> list[dict[str, Any]]:
        """How many answered records of MODEL in [SINCE, UNTIL) ran in a micro-batch of each size:
        rows {version, role, batch_size, n} (batch_size NULL: not micro-batched)."""
        checked_window(since, until)
        return self._rows(self._q(
            "SELECT version, role, batch_size, COUNT(*) AS n FROM records WHERE model = ? AND time >= ? "
            "AND time < ? AND code = 'OK' GROUP BY version, role, batch_size ORDER BY batch_size"),
            (model, float(since), float(until)))

    # -- single records, in bounded pages -------------------------------------------------------

    def recent_records(self, model: str, limit: int = 50, before: float | None = None,
                       version: str | None = None) -> list[dict[str, Any]]:
        """The newest LIMIT (at most MAX_PAGE) records of MODEL older than BEFORE, newest first."""
        return list(self.query(model, version=version, until=before, limit=checked_page(limit), newest_first=True,
                               batch=checked_page(limit)))

    def records_by_trace(self, trace_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """Records whose trace id is TRACE_ID (a trace may hold several requests), newest first."""
        rows = self._rows(self._q(f"SELECT * FROM records WHERE trace_id = ? ORDER BY time DESC, slot "
                                  f"LIMIT {checked_page(limit)}"), (trace_id,))
        return [record_of(r) for r in rows]

    def answer_digest(self, request_id: str) -> str | None:
        """The package digest of the version that answered REQUEST_ID, when recorded."""
        rows = self._rows(self._q("SELECT digest FROM records WHERE request_id = ? AND slot = 'answer'"),
                          (request_id,))
        return rows[0]["digest"] or None if rows else None

    def latest_package(self, model: str) -> dict[str, Any] | None:
        """The recorded package of MODEL's highest version (its manifest, signature, provenance)."""
        rows = self._rows(self._q("SELECT body FROM packages WHERE model = ? ORDER BY version DESC LIMIT 1"),
                          (model,))
        return json.loads(rows[0]["body"]) if rows else None

    # -- the drift monitor's state ----------------------------------------------------------------

    def save_drift_status(self, rows: list[dict[str, Any]]) -> None:
        columns = DRIFT_KEY + ("checked_at", "row_count", "score", "threshold", "p_value", "alerting", "body")
        update = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in DRIFT_KEY)
        sql = self._q(f"INSERT INTO drift_status ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                      f"ON CONFLICT ({', '.join(DRIFT_KEY)}) DO UPDATE SET {update}")
        with self._transaction() as cursor:
            cursor.executemany(sql, [tuple(json.dumps(r[c]) if c == "body" else r[c] for c in columns) for r in rows])

    def drift_status(self, model: str) -> list[dict[str, Any]]:
        """The latest check of every column of MODEL, its histograms (`body`) decoded."""
        rows = self._rows(self._q("SELECT * FROM drift_status WHERE model = ? ORDER BY version, role, tensor, "
                                  "feature, window_kind"), (model,))
        for row in rows:
            row["body"] = json.loads(row["body"])
        return rows

    def drift_alerts(self, model: str | None = None, since: float | None = None,
                     open_only: bool = False) -> list[dict[str, Any]]:
        """Drift alerts, oldest first: of MODEL (every model when None), open ones only, or those
        open at some time since SINCE."""
        where, params = ["1 = 1"], []
        if model is not None:
            where, params = where + ["model = ?"], params + [model]
        if open_only:
            where.append("cleared_at IS NULL")
        if since is not None:
            where, params = where + ["(cleared_at IS NULL OR cleared_at >= ?)"], params + [since]
        return self._rows(self._q(f"SELECT * FROM drift_alerts WHERE {' AND '.join(where)} ORDER BY raised_at"),
                          params)

    def raise_drift_alert(self, alert: dict[str, Any]) -> None:
        columns = DRIFT_KEY + ("raised_at", "last_seen", "score", "threshold", "p_value", "row_count", "message")
        with self._transaction() as cursor:
            cursor.execute(self._q(f"INSERT INTO drift_alerts ({', '.join(columns)}) "
                                   f"VALUES ({', '.join('?' * len(columns))})"), tuple(alert[c] for c in columns))

    def refresh_drift_alert(self, alert: dict[str, Any], now: float, score: float, p_value: float | None,
                            rows: int) -> None:
        with self._transaction() as cursor:
            cursor.execute(self._q("UPDATE drift_alerts SET last_seen = ?, score = ?, p_value = ?, row_count = ? "
                                   f"WHERE {' AND '.join(f'{c} = ?' for c in DRIFT_KEY)} AND raised_at = ?"),
                           (now, score, p_value, rows, *(alert[c] for c in DRIFT_KEY), alert["raised_at"]))

    def clear_drift_alert(self, alert: dict[str, Any], now: float) -> None:
        with self._transaction() as cursor:
            cursor.execute(self._q(f"UPDATE drift_alerts SET cleared_at = ? WHERE "
                                   f"{' AND '.join(f'{c} = ?' for c in DRIFT_KEY)} AND raised_at = ?"),
                           (now, *(alert[c] for c in DRIFT_KEY), alert["raised_at"]))

    def size_bytes(self) -> int:  # pragma: no cover - per database
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - per database
        raise NotImplementedError


class _Transaction:
    def __init__(self, connection):
        self.connection = connection

    def __enter__(self):
        self.cursor = self.connection.cursor()
        return self.cursor

    def __exit__(self, kind, exc, tb):
        if kind is None:
            self.connection.commit()
        else:
            self.connection.rollback()
        self.cursor.close()


def _owner_only(path: Path) -> None:
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except FileNotFoundError:
        pass
    except PermissionError:  # another user's store, read through file access they granted
        pass


class SQLiteStore(RecordStore):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        # Records hold what clients sent: as private as the spools. SQLite gives its -wal and -shm
        # files the database file's mode, so the file is made 0600 before SQLite opens it.
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        for made in (self.path, self.path.with_name(self.path.name + "-wal"), self.path.with_name(self.path.name + "-shm")):
            _owner_only(made)
        self.connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
        for statement in SCHEMA:
            self.connection.execute(statement)
        self.connection.commit()

    def _execute(self, sql, params=()):
        return self.connection.execute(sql, tuple(params))

    def _transaction(self):
        return _Transaction(self.connection)

    def size_bytes(self) -> int:
        page_count = self.connection.execute("PRAGMA page_count").fetchone()[0]
        free = self.connection.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = self.connection.execute("PRAGMA page_size").fetchone()[0]
        return (page_count - free) * page_size

    def close(self) -> None:
        self.connection.close()


class PostgresStore(RecordStore):
    placeholder = "%s"
    floor_sql = "CAST(FLOOR({}) AS INTEGER)"

    def __init__(self, url: str):
        import psycopg

        self.url = url
        self.connection = psycopg.connect(url, connect_timeout=10)
        with self._transaction() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(715517)")  # several recorders may create it at once
            for statement in SCHEMA:
                cursor.execute(statement)

    def _execute(self, sql, params=()):
        cursor = self.connection.execute(sql, tuple(params))
        self.connection.commit()
        return cursor

    def _transaction(self):
        return _Transaction(self.connection)

    def size_bytes(self) -> int:
        return int(self._rows("SELECT pg_total_relation_size('records') AS n")[0]["n"])

    def close(self) -> None:
        self.connection.close()


def open_store(url: str) -> RecordStore:
    url = store_url_for(url)
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        return SQLiteStore(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url[len("sqlite://"):])
    if scheme in ("postgresql", "postgres"):
        return PostgresStore(url)
    raise ValueError(f"records store '{url}' is neither sqlite:///PATH nor postgresql://...")


def redacted(url: str) -> str:
    """URL without its password, for logs."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


def store_url_for(text: str) -> str:
    """A store URL as given, or the default store of a folder of model packages `meshserve up` served."""
    if "://" in text:
        return text
    folder = Path(text)
    for candidate in (RecordsFolder.default_for(folder).store_file, RecordsFolder(folder).store_file, folder):
        if candidate.is_file():
            return f"sqlite:///{candidate.resolve()}"
    raise ValueError(f"no records store at {text}: give sqlite:///PATH, postgresql://..., or the folder of model "
                     "packages the mesh served (its records are in FOLDER/.meshserve/records/records.db)")


def default_store_url(records_dir: str | Path) -> str:
    return f"sqlite:///{RecordsFolder(Path(records_dir)).store_file}"

