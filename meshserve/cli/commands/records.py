"""`meshserve records export --model M ...`: prediction records as Parquet, CSV or JSON lines, asked of
the running mesh in pages (meshserve.v1.Control/ExportRecords) or read from `--store`;
`meshserve records losses --store S`: the records the mesh could not write."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from meshserve.cli.shared_options import add_records_options, add_store_option


def _time(text: str) -> float:
    """ISO 8601 (2026-12-01T08:00, UTC unless it says otherwise) or seconds since the epoch."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a time; write e.g. 2026-12-01T08:00 or seconds since the epoch") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def register(subparsers) -> None:
    parser = subparsers.add_parser("records", help="export prediction records, or see those that could not be written")
    actions = parser.add_subparsers(dest="records_command", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write the records of a model to a Parquet, CSV or JSONL file")
    export.add_argument("--model", required=True, help="model name")
    export.add_argument("--version", default=None, help="only this version")
    export.add_argument("--role", default=None, choices=["primary", "canary", "shadow"], help="only this traffic")
    export.add_argument("--since", type=_time, default=None, help="from this time (ISO 8601 or epoch seconds)")
    export.add_argument("--until", type=_time, default=None, help="before this time")
    export.add_argument("--format", default=None, choices=["parquet", "csv", "jsonl"],
                        help="default: from the file's suffix, else parquet")
    export.add_argument("-o", "--output", required=True, help="file to write")
    add_records_options(export)
    losses = actions.add_parser("losses", help="records the mesh could not write (disk full or read-only, spool "
                                               "at its bound), per model, version and reason")
    losses.add_argument("--since", type=_time, default=None, help="only losses that went on after this time")
    add_store_option(losses, required=True)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    export.set_defaults(func=_export)
    losses.set_defaults(func=_losses)


def _losses(args) -> int:
    """Totals as the processes reported them once their spool took records again; a process still
    losing records counts them in meshserve_records_lost_total until then."""
    from meshserve.cli.records_source import RecordsSource

    with RecordsSource(args).store() as store:
        rows = store.losses(args.since)
    if not rows:
        print("no records lost" + (" in that window" if args.since else "") + " (a process still unable to write "
              "its spool reports its losses once it can; meanwhile see meshserve_records_lost_total)")
        return 0
    print(f"{'model':<24} {'version':<10} {'side':<8} {'reason':<16} {'lost':>8}  from -> to (UTC)")
    for row in rows:
        span = " -> ".join(_utc(t) for t in (row["first_at"], row["last_at"]))
        print(f"{row['model']:<24} {row['version']:<10} {row['side']:<8} {row['reason']:<16} {row['count']:>8}  {span}")
    print(f"{sum(row['count'] for row in rows)} records lost in all")
    return 1


def _utc(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _export(args) -> int:
    from meshserve.cli.records_source import RecordsSource

    output = Path(args.output)
    fmt = args.format or {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(output.suffix, "parquet")
    source = RecordsSource(args)
    if source.through_mesh:
        total, records = _from_mesh(source, args)
        rows, done = _write(args, source, total, records, output, fmt)
    else:
        with source.store() as store:
            total = store.count_matching(args.model, args.version, args.since, args.until)
            records = store.query(args.model, args.version, args.since, args.until, role=args.role)
            rows, done = _write(args, source, total, records, output, fmt)
    print(f"wrote {rows:,} rows ({done:,} records) to {output} ({fmt})")
    return 0


def _write(args, source, total: int, records, output: Path, fmt: str) -> tuple[int, int]:
    """Write RECORDS (TOTAL of them, for progress); returns (rows written, records read)."""
    from meshserve.core.progress import Progress
    from meshserve.sidecars.records.api import export

    if total == 0:
        print(f"meshserve: no records of model '{args.model}'{' version ' + args.version if args.version else ''} "
              f"in that window of {source.where()}", file=sys.stderr)
    progress = Progress(total, f"exporting {args.model} records")
    rows = export(records, output, fmt, progress=progress)
    progress.finish()
    return rows, progress.done


def _from_mesh(source, args):
    """(how many records the window holds, the records page by page as the mesh sends them)."""
    from meshserve.cli.records_source import given
    from meshserve.sidecars.records.api import from_message
    from meshserve.v1 import control_pb2 as cpb

    request = cpb.ExportRecordsRequest(model=args.model, version=args.version or "", role=args.role or "",
                                       **given(since=args.since, until=args.until))
    pages = source.stream("ExportRecords", request)
    first = next(pages, None)

    def records():
        for page in ([first] if first is not None else []):
            yield from (from_message(m) for m in page.records)
        for page in pages:
            yield from (from_message(m) for m in page.records)

    return (first.total if first is not None else 0), records()
