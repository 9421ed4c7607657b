"""Rows in files: the one reader (and writer) for every part that takes a table from a file.

Training data (`meshserve package --training-data`, `meshserve baseline --data`), golden
examples (`--golden-from`), batch jobs (`meshserve batch`) and bulk outcomes (`meshserve
outcomes`) all read tables, so they accept the same files, named by their ending:

    .csv                     comma-separated, first line the column names
    .tsv                     tab-separated, first line the column names
    .parquet, .pq            Parquet
    .jsonl, .ndjson, .json   JSON lines: one JSON object per line, keys the column names

A text format may be gzip-compressed: add `.gz` (`rows.csv.gz`, `rows.jsonl.gz`). Any other
ending is refused with an error that names the file and these endings. pyarrow reads and
writes them all; a whole table (`read_table`) or, for files larger than memory, tables of
a fixed number of rows (`iter_tables`), which is what lets a batch job resume at a chunk, or
rows one at a time (`iter_rows`).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from meshserve.core.errors import ManifestError

_NAMES = {"csv": "CSV", "tsv": "tab-separated text", "parquet": "Parquet", "jsonl": "JSON lines"}
_KINDS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
          ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
ACCEPTED_ENDINGS = (".csv, .tsv, .parquet (or .pq), .jsonl (or .ndjson, .json: one JSON object per line); "
                    "a .csv, .tsv or JSON-lines file may be gzip-compressed (.csv.gz, ...)")
CSV_BLOCK_BYTES = 1 << 22  # what pyarrow parses at once; type inference sees the first block
JSON_BLOCK_BYTES = 1 << 22
ROWS_PER_READ = 2000  # iter_rows: rows converted to dicts at a time

InvalidRow = Callable[[str], None]  # told "line N: why" for each row skipped


class TabularFileError(ManifestError):
    """A table file that cannot be read; the message names the file, the option that gave it,
    the problem and what to do."""

    def __init__(self, path: Path | str, problem: str, fix: str, field: str = "(file)"):
        super().__init__(str(path), field, problem, fix)


@dataclass(frozen=True)
class TableFormat:
    """How a file holds its rows, from its ending."""

    kind: str  # "csv", "tsv", "parquet" or "jsonl"
    gzipped: bool = False

    @property
    def delimited(self) -> bool:
        return self.kind in ("csv", "tsv")

    @property
    def delimiter(self) -> str:
        return "\t" if self.kind == "tsv" else ","


def format_of(path: Path | str, field: str = "(file)") -> TableFormat:
    """The format PATH's ending names; TabularFileError naming the accepted endings for any other."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    ending = suffixes[-2 if gzipped else -1] if len(suffixes) > gzipped else ""
    kind = _KINDS.get(ending)
    if kind is None or (gzipped and kind == "parquet"):
        shown = "".join(suffixes[-2:] if gzipped else suffixes[-1:]) or "(no ending)"
        raise TabularFileError(path, f"'{shown}' is not a table format meshserve reads",
                               f"give a file ending in {ACCEPTED_ENDINGS}", field)
    return TableFormat(kind, gzipped)


def _readable(path: Path, field: str) -> TableFormat:
    fmt = format_of(path, field)
    if not path.is_file():
        raise TabularFileError(path, "no such file", "give the path of an existing file", field)
    return fmt


def _unreadable(path: Path, fmt: TableFormat, exc: Exception, field: str) -> TabularFileError:
    # pyarrow says why (ArrowInvalid: "CSV parse error: Expected 3 columns, got 2: ...").
    name = _NAMES[fmt.kind] + (" (gzip)" if fmt.gzipped else "")
    shape = " (one JSON object per line)" if fmt.kind == "jsonl" else ""
    return TabularFileError(path, f"cannot be read as {name}: {exc}",
                            f"make it valid {_NAMES[fmt.kind]}{shape}, or give it the ending of its format", field)


def read_table(path: Path | str, field: str = "(file)", cells_as_text: bool = False) -> pa.Table:
    """The whole file as one pyarrow Table. FIELD names the option that gave the file, for errors;
    CELLS_AS_TEXT keeps a CSV/TSV file's cells as written (no number inference)."""
    path = Path(path)
    fmt = _readable(path, field)
    try:
        if fmt.kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if fmt.kind == "jsonl":  # in blocks, so an error names the line
            blocks = list(_json_line_blocks(path, fmt, None))
            return _joined(blocks) if blocks else pa.table({})
        import pyarrow.csv as pacsv

        return pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=fmt.delimiter),
                              convert_options=_text_cells(path, fmt) if cells_as_text else None)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, fmt, exc, field) from exc


def iter_tables(path: Path | str, rows: int, field: str = "(file)", cells_as_text: bool = False,
                on_invalid_row: InvalidRow | None = None) -> Iterator[pa.Table]:
    """The file as tables of exactly ROWS rows (the last may hold fewer), read as they are needed,
    so a file larger than memory streams and the same file always splits at the same rows.

    Without ON_INVALID_ROW a row that cannot be parsed stops the reading with TabularFileError;
    with it, the row is skipped and ON_INVALID_ROW told "line N: why" (CSV/TSV and JSON lines)."""
    if rows < 1:
        raise ValueError(f"rows per table must be at least 1, not {rows}")
    path = Path(path)
    fmt = _readable(path, field)
    try:
        yield from _exact(_batches(path, fmt, rows, cells_as_text, on_invalid_row), rows)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, fmt, exc, field) from exc


def iter_rows(path: Path | str, field: str = "(file)", cells_as_text: bool = False,
              on_invalid_row: InvalidRow | None = None) -> Iterator[dict[str, Any]]:
    """The file's rows as dicts, for readers that take a row at a time (invalid rows as in
    `iter_tables`). JSON lines are read a line at a time, not as columns: a value may change type
    from row to row (a number for one request, a list for a batch of rows), which no column holds."""
    path = Path(path)
    fmt = _readable(path, field)
    if fmt.kind != "jsonl":
        for table in iter_tables(path, ROWS_PER_READ, field, cells_as_text, on_invalid_row):
            yield from table.to_pylist()
        return
    with _open_binary(path, fmt) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            problem = _not_an_object(line)
            if problem is None:
                yield json.loads(line)
            elif on_invalid_row is None:
                raise _unreadable(path, fmt, ValueError(f"line {number}: {problem}"), field)
            else:
                on_invalid_row(f"line {number}: {problem}")


def count_rows(path: Path | str) -> int:
    """Rows in the file, cheaply: Parquet's metadata, else its lines (less a CSV/TSV header line)."""
    path = Path(path)
    fmt = _readable(path, "(file)")
    if fmt.kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with _open_binary(path, fmt) as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return max(lines - (1 if fmt.delimited else 0), 0)


def _open_binary(path: Path, fmt: TableFormat) -> IO[bytes]:
    return gzip.open(path, "rb") if fmt.gzipped else open(path, "rb")


def _text_cells(path: Path, fmt: TableFormat):
    """Convert options that keep every column of a delimited file as text, named from its header."""
    import pyarrow.csv as pacsv

    header = pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=fmt.delimiter,
                                                                   invalid_row_handler=lambda row: "skip"),
                            read_options=pacsv.ReadOptions(block_size=1 << 16, use_threads=False))
    return pacsv.ConvertOptions(column_types={name: pa.string() for name in header.schema.names})


def _batches(path: Path, fmt: TableFormat, rows: int, cells_as_text: bool,
             on_invalid_row: InvalidRow | None) -> Iterator[pa.Table | pa.RecordBatch]:
    if fmt.kind == "parquet":
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(path).iter_batches(batch_size=rows)
    elif fmt.kind == "jsonl":
        yield from _json_line_blocks(path, fmt, on_invalid_row)
    else:
        yield from _delimited_batches(path, fmt, cells_as_text, on_invalid_row)


def _delimited_batches(path: Path, fmt: TableFormat, cells_as_text: bool,
                       on_invalid_row: InvalidRow | None) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pacsv

    def skip(row) -> str:
        # pyarrow numbers a row from the file's start, header included, once reading is single-threaded.
        on_invalid_row(f"line {row.number}: expected {row.expected_columns} columns, got {row.actual_columns}")
        return "skip"

    parse = pacsv.ParseOptions(delimiter=fmt.delimiter, invalid_row_handler=skip if on_invalid_row else None)
    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False),
                            parse_options=parse, convert_options=_text_cells(path, fmt) if cells_as_text else None)
    yield from reader


def _json_line_blocks(path: Path, fmt: TableFormat, on_invalid_row: InvalidRow | None) -> Iterator[pa.Table]:
    """JSON lines a few MiB at a time (pyarrow reads JSON only whole), each block parsed by pyarrow."""
    import pyarrow.json as pajson

    first_line = 1
    with _open_binary(path, fmt) as handle:
        while block := handle.readlines(JSON_BLOCK_BYTES):
            try:
                table = pajson.read_json(io.BytesIO(b"".join(block)))
            except pa.ArrowInvalid as exc:
                table = _parsed_line_by_line(block, first_line, on_invalid_row, exc)
            first_line += len(block)
            if table.num_rows:
                yield table


def _parsed_line_by_line(block: list[bytes], first_line: int, on_invalid_row: InvalidRow | None,
                         exc: pa.ArrowInvalid) -> pa.Table:
    """A block pyarrow refused: find the lines that are no JSON object, name the first (or skip
    each, telling ON_INVALID_ROW), and parse the rest."""
    import pyarrow.json as pajson

    kept: list[bytes] = []
    for number, line in enumerate(block, first_line):
        if not line.strip():
            continue
        problem = _not_an_object(line)
        if problem is None:
            kept.append(line if line.endswith(b"\n") else line + b"\n")
        elif on_invalid_row is None:
            raise pa.ArrowInvalid(f"line {number}: {problem}")
        else:
            on_invalid_row(f"line {number}: {problem}")
    if len(kept) == sum(1 for line in block if line.strip()):
        raise exc  # every line is an object: the values disagree in type, which pyarrow said
    return pajson.read_json(io.BytesIO(b"".join(kept))) if kept else pa.table({})


def _not_an_object(line: bytes) -> str | None:
    try:
        value = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"not JSON ({getattr(exc, 'msg', exc)})"
    return None if isinstance(value, dict) else f"a JSON {type(value).__name__}, not an object of columns"


def _exact(batches: Iterable[pa.Table | pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    pending: list[pa.Table] = []
    count = 0
    for batch in batches:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        pending.append(table)
        count += table.num_rows
        while count >= rows:
            joined = _joined(pending)
            yield joined.slice(0, rows)
            rest = joined.slice(rows)
            pending, count = ([rest] if rest.num_rows else []), rest.num_rows
    if count:
        yield _joined(pending)


def _joined(tables: list[pa.Table]) -> pa.Table:
    # JSON-line blocks infer their types apart ([1, 2] in one, [2.5] in the next): widen, as one read would.
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive").combine_chunks()


class TableWriter:
    """Tables appended to PATH in the format FMT names (PATH may be a temporary name)."""

    def __init__(self, path: Path, schema: pa.Schema, fmt: TableFormat):
        self.fmt = fmt
        self._sink: Any = None
        if fmt.kind == "parquet":
            import pyarrow.parquet as pq

            self._writer: Any = pq.ParquetWriter(path, schema)
        elif fmt.kind == "jsonl":
            self._writer = gzip.open(path, "wt") if fmt.gzipped else open(path, "w")
        else:
            import pyarrow.csv as pacsv

            self._sink = pa.CompressedOutputStream(str(path), "gzip") if fmt.gzipped else None
            self._writer = pacsv.CSVWriter(self._sink or str(path), schema,
                                           write_options=pacsv.WriteOptions(delimiter=fmt.delimiter))

    def write(self, table: pa.Table) -> None:
        if self.fmt.kind == "jsonl":
            for row in table.to_pylist():
                self._writer.write(json.dumps(row) + "\n")
        else:
            self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()
        if self._sink is not None:
            self._sink.close()
