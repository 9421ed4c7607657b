"""Live data for drift: the recorded values of one model version and role, over two windows.

The count window is the newest `window_rows` rows whenever they came; the time window is every
row of the last `window_s` seconds (at most `max_rows`, the newest). One newest-first pass over
the store fills both. Only answered requests count (an error's inputs were refused, not served),
and each row of a batched request is one row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ROLES = ("primary", "canary", "shadow")


@dataclass
class Window:
    kind: str  # "rows" (count window) or "time"
    size: float  # rows or seconds
    rows: int = 0
    start: float | None = None  # time of the oldest and newest record in it
    end: float | None = None
    columns: dict[tuple[str, str], list] = field(default_factory=lambda: defaultdict(list))

    @property
    def label(self) -> str:
        return f"newest {int(self.size):,} rows" if self.kind == "rows" else f"last {self.size:g} s"

    def add(self, record: dict[str, Any], values: dict[tuple[str, str], list], rows: int) -> None:
        self.rows += rows
        self.start = record["time"] if self.start is None else min(self.start, record["time"])
        self.end = record["time"] if self.end is None else max(self.end, record["time"])
        for key, column in values.items():
            self.columns[key] += column


def _position(tensor: dict[str, Any], name: str, column: str) -> int | None | bool:
    """Where COLUMN sits in a recorded tensor: None for a 1-D tensor, an index, or False if absent."""
    shape = tensor.get("shape") or []
    if len(shape) == 1:
        return None if column == name else False
    if len(shape) != 2:
        return False
    features = tensor.get("features") or []
    if column in features:
        return features.index(column)
    prefix = f"{name}_"
    if column.startswith(prefix) and column[len(prefix):].isdigit():
        return int(column[len(prefix):])
    return False


def record_values(record: dict[str, Any], wanted: Iterable[tuple[str, str, str]]) -> tuple[dict, int]:
    """({(tensor, column): values}, rows) of one record for the (role, tensor, column) WANTED."""
    values: dict[tuple[str, str], list] = {}
    rows = 0
    for role, name, column in wanted:
        tensor = (record.get("inputs" if role == "input" else "outputs") or {}).get(name)
        if not tensor or tensor.get("values") is None:
            continue
        position = _position(tensor, name, column)
        if position is False:
            continue
        data = tensor["values"]
        column_values = list(data) if position is None else [row[position] for row in data]
        values[(name, column)] = column_values
        rows = max(rows, len(column_values))
    return values, rows


def windows(store: Any, model: str, version: str, role: str, wanted: list[tuple[str, str, str]],
            window_rows: int, window_s: float, max_rows: int, now: float) -> tuple[Window, Window]:
    by_count, by_time = Window("rows", window_rows), Window("time", window_s)
    cutoff = now - window_s
    for record in store.query(model, version=version, role=role, newest_first=True):
        count_full = by_count.rows >= window_rows
        time_done = record["time"] < cutoff or by_time.rows >= max_rows
        if count_full and time_done:
            break
        if record.get("code") != "OK" or record.get("side") != "adapter":
            continue
        values, rows = record_values(record, wanted)
        if not rows:
            continue
        if not count_full:
            keep = window_rows - by_count.rows
            by_count.add(record, {k: v[:keep] for k, v in values.items()}, min(rows, keep))
        if not time_done and record["time"] <= now:
            by_time.add(record, values, rows)
    return by_count, by_time
