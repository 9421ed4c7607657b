"""Ground truth: outcomes reported by request id, long after the predictions they judge.

An outcome names the request it belongs to and holds the true value of one or more of the
model's outputs (`label: 1`, `default_probability: 0.0`, ...), one value per row of the
request's batch. Outcomes come one at a time through the control API or in bulk from a file
(any table file meshserve reads: CSV, TSV, Parquet, JSON lines; with a request-id column and
columns named after the outputs). The latest report of a request wins, and the summary says
how many replaced earlier ones; ids with no recorded answer yet are kept (their records may
still be on their way) and counted.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshserve.core import tabular_files
from meshserve.sidecars.records.store import RecordStore

BATCH = 2000


@dataclass
class OutcomeSummary:
    rows: int = 0
    stored: int = 0
    matched: int = 0  # outcomes whose request has a recorded answer
    unknown: int = 0  # no recorded answer with that request id (yet)
    duplicates_in_input: int = 0  # the same id more than once in what was sent; the latest row won
    replaced: int = 0  # ids reported before; the new report won
    malformed: int = 0
    problems: list[str] = field(default_factory=list)  # the first few malformed rows, said plainly
    ignored_columns: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        self.malformed += 1
        if len(self.problems) < 10:
            self.problems.append(problem)

    def lines(self) -> list[str]:
        said = [f"{self.rows:,} rows read, {self.stored:,} outcomes stored",
                f"{self.matched:,} matched a recorded prediction",
                f"{self.unknown:,} unknown request ids (no recorded prediction yet; kept, joined when one arrives)",
                f"{self.duplicates_in_input:,} duplicate request ids in the input (the latest row won)",
                f"{self.replaced:,} replaced an outcome reported earlier (the latest report wins)",
                f"{self.malformed:,} malformed rows skipped"]
        said += [f"  {problem}" for problem in self.problems]
        if self.ignored_columns:
            said.append(f"columns that are no output of the model, ignored: {', '.join(self.ignored_columns)}")
        return said


def _value(raw: Any) -> Any:
    """A cell as the outcome value: numbers stay numbers, JSON lists (several rows) are parsed."""
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            return json.loads(text)
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    if isinstance(raw, float) and math.isnan(raw):
        return None
    return raw


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The file's rows as dicts, read by meshserve.core.tabular_files. A CSV/TSV cell stays the
    text it is (a request id "007" keeps its zeros; `_value` reads numbers and lists); a row that
    cannot be parsed comes as {"__malformed__": "line N: why"}, so it is counted, not fatal."""
    malformed: list[str] = []
    for row in tabular_files.iter_rows(path, cells_as_text=True, on_invalid_row=malformed.append):
        yield from ({"__malformed__": problem} for problem in malformed)
        malformed.clear()
        yield row
    yield from ({"__malformed__": problem} for problem in malformed)


def import_outcomes(store: RecordStore, rows: Iterator[dict[str, Any]], outputs: list[str] | None = None,
                    id_column: str = "request_id", time_column: str = "time", progress=None) -> OutcomeSummary:
    """Store outcomes from ROWS; OUTPUTS, when given, are the only columns taken as outcome values."""
    summary = OutcomeSummary()
    pending: dict[str, tuple[str, float, dict]] = {}
    ignored: set[str] = set()
    seen: set[str] = set()  # ids of this input already sent to the store

    def flush() -> None:
        batch = list(pending.values())
        known, recorded = store.save_outcomes(batch)
        for request_id, _, _ in batch:
            if request_id in seen:
                continue  # a later row of this input for an id an earlier batch stored: counted as a duplicate
            seen.add(request_id)
            summary.stored += 1
            summary.replaced += request_id in known
            summary.matched += request_id in recorded
            summary.unknown += request_id not in recorded
        pending.clear()

    for number, row in enumerate(rows, 1):
        summary.rows += 1
        if progress is not None:
            progress.advance()
        if "__malformed__" in row:
            summary.note(row["__malformed__"])
            continue
        request_id = str(row.get(id_column) or "").strip()
        if not request_id:
            summary.note(f"row {number}: no '{id_column}'")
            continue
        when = row.get(time_column)
        try:
            when = float(when) if when not in (None, "") else time.time()
        except (TypeError, ValueError):
            summary.note(f"row {number} ({request_id}): '{time_column}' is not seconds since the epoch: {when!r}")
            continue
        values: dict[str, Any] = {}
        try:
            for column, raw in row.items():
                if column in (id_column, time_column):
                    continue
                if outputs is not None and column not in outputs:
                    ignored.add(column)
                    continue
                value = _value(raw)
                if value is not None and value != "":
                    values[column] = value
        except json.JSONDecodeError as exc:
            summary.note(f"row {number} ({request_id}): a list that is not JSON ({exc.msg})")
            continue
        if not values:
            summary.note(f"row {number} ({request_id}): no outcome value"
                         + (f" (expected a column among {', '.join(outputs)})" if outputs else ""))
            continue
        if request_id in pending or request_id in seen:
            summary.duplicates_in_input += 1
        pending[request_id] = (request_id, when, values)
        if len(pending) >= BATCH:
            flush()
    flush()
    summary.ignored_columns = sorted(ignored)
    return summary


CLASS_TYPES = {"BYTES", "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def _class_output(store: RecordStore, request_id: str) -> tuple[str, str] | None:
    """(output name, datatype) of the first class output of the model that answered REQUEST_ID."""
    digest = store.answer_digest(request_id)
    package = store.package(digest) if digest else None
    if package is None:
        return None
    classes = [o for o in package["signature"]["outputs"] if o["datatype"] in CLASS_TYPES]
    return (classes[0]["name"], classes[0]["datatype"]) if len(classes) == 1 else None


def outcomes_from_messages(store: RecordStore, messages: list) -> tuple[list[tuple[str, float, dict]], list[str]]:
    """Control-API outcomes as (request_id, time, values), and the reasons for those refused."""
    accepted, refused = [], []
    for message in messages:
        if not message.request_id:
            refused.append("an outcome without request_id")
            continue
        values: dict[str, Any] = {}
        for name, given in message.outputs.items():
            items = list(given.numbers) or list(given.labels)
            if items:
                values[name] = items[0] if len(items) == 1 else items
        if message.label:
            target = _class_output(store, message.request_id)
            if target is None:
                refused.append(f"{message.request_id}: a label needs a recorded answer of a model with exactly one "
                               "class output; name the output in `outputs` instead")
                continue
            name, datatype = target
            try:
                values[name] = message.label if datatype == "BYTES" else int(message.label)
            except ValueError:
                refused.append(f"{message.request_id}: label '{message.label[:80]}' is not a number, and output "
                               f"'{name}' is {datatype}")
                continue
        if not values:
            refused.append(f"{message.request_id}: no outcome value (give `outputs` or `label`)")
            continue
        accepted.append((message.request_id, message.time or time.time(), values))
    return accepted, refused
