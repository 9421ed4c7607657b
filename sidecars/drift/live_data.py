"""Live data for drift: the recorded values of one model version and role, over two windows.

The count window is the newest `window_rows` rows whenever they came; the time window is every
row of the last `window_s` seconds (at most `max_rows`, the newest). Only answered requests count
(an error's inputs were refused, not served), and each row of a batched request is one row.

Reading is the cost of a check, so it is done in one or two indexed queries that fetch only the
records' bodies, and each tensor's rows are gathered whole and cut into columns once at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from meshserve.sidecars.records.store import RECORD_KEY

ROLES = ("primary", "canary", "shadow")


@dataclass
class Window:
    kind: str  # "rows" (count window) or "time"
    size: float  # rows or seconds
    rows: int = 0
    start: float | None = None  # time of the oldest and newest record in it
    end: float | None = None
    # (io, tensor) -> the recorded rows of that tensor, in chunks (one per record)
    chunks: dict[tuple[str, str], list[list]] = field(default_factory=dict)
    layouts: dict[tuple[str, str], tuple] = field(default_factory=dict)  # (io, tensor) -> (shape rank, features)
    _matrices: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return f"newest {int(self.size):,} rows" if self.kind == "rows" else f"last {self.size:g} s"

    def described(self) -> "Window":
        """The window without its rows: what a result keeps once its check is done."""
        return Window(self.kind, self.size, self.rows, self.start, self.end)

    def add(self, moment: float, body: dict[str, Any], wanted: set[tuple[str, str]], limit: int | None) -> int:
        """Add a record's rows (at most LIMIT); returns how many rows it added."""
        rows = 0
        for io, group in (("input", body.get("inputs")), ("output", body.get("outputs"))):
            for name, tensor in (group or {}).items():
                values = tensor.get("values")
                shape = tensor.get("shape") or []
                if (io, name) not in wanted or values is None or len(shape) not in (1, 2):
                    continue
                values = values if limit is None else values[:limit]
                self.chunks.setdefault((io, name), []).append(values)
                self.layouts.setdefault((io, name), (len(shape), tuple(tensor.get("features") or ())))
                rows = max(rows, len(values))
        if rows:
            self.rows += rows
            self.start = moment if self.start is None else min(self.start, moment)
            self.end = moment if self.end is None else max(self.end, moment)
        return rows

    def column(self, io: str, tensor: str, column: str) -> Any:
        """One column's values over the window (empty when the records do not hold it)."""
        chunks = self.chunks.get((io, tensor))
        if not chunks:
            return []
        rank, features = self.layouts[(io, tensor)]
        if rank == 1:
            return [v for chunk in chunks for v in chunk] if column == tensor else []
        position = _position(features, tensor, column)
        if position is None:
            return []
        matrix = self._matrices.get((io, tensor))
        if matrix is None:  # once per tensor, not once per column
            rows = [row for chunk in chunks for row in chunk]
            try:
                matrix = np.asarray(rows, dtype=float)
                if matrix.ndim != 2:
                    raise ValueError("ragged rows")
            except (TypeError, ValueError):  # text or ragged rows: kept as they are
                matrix = rows
            self._matrices[(io, tensor)] = matrix
        if isinstance(matrix, np.ndarray):
            return matrix[:, position] if position < matrix.shape[1] else []
        return [row[position] if position < len(row) else None for row in matrix]


def _position(features: tuple, tensor: str, column: str) -> int | None:
    if column in features:
        return features.index(column)
    if column == tensor and not features:
        return 0  # a [-1, 1] tensor's one column
    prefix = f"{tensor}_"
    if column.startswith(prefix) and column[len(prefix):].isdigit():
        return int(column[len(prefix):])
    return None


def _answered(store: Any, model: str, version: str, role: str, since: float | None, until: float,
              limit: int, page: int = 100) -> Iterator[tuple[float, dict[str, Any]]]:
    """(time, body) of answered records, newest first, read a page at a time: a record can hold
    thousands of rows (a batch chunk), so the caller stops as soon as it has the rows it needs."""
    where = ["model = ?", "version = ?", "role = ?", "code = 'OK'", "side = 'adapter'", "time <= ?"]
    params: list[Any] = [model, version, role, until]
    if since is not None:
        where.append("time >= ?")
        params.append(since)
    for row in store.pages("SELECT time, request_id, slot, body FROM records", where, params, RECORD_KEY,
                           descending=True, batch=page, limit=limit):
        yield row["time"], orjson.loads(row["body"])


def windows(store: Any, model: str, version: str, role: str, wanted: set[tuple[str, str]],
            window_rows: int, window_s: float, max_rows: int, now: float) -> tuple[Window, Window]:
    """The count and time windows of one version and role; WANTED names the (io, tensor) to read."""
    by_count, by_time = Window("rows", window_rows), Window("time", window_s)
    read: list[tuple[float, dict[str, Any]]] = []
    for moment, body in _answered(store, model, version, role, now - window_s, now, max_rows):
        if by_time.rows >= max_rows:
            break
        read.append((moment, body))
        by_time.add(moment, body, wanted, max_rows - by_time.rows)
    # The count window reaches back before the time window when that holds too few rows;
    # a record holds at least one row, so window_rows records are always enough.
    bodies = iter(read) if by_time.rows >= window_rows else _answered(store, model, version, role, None, now,
                                                                      window_rows)
    for moment, body in bodies:
        if by_count.rows >= window_rows:
            break
        by_count.add(moment, body, wanted, window_rows - by_count.rows)
    return by_count, by_time
