"""`meshserve records export --model M ...`: prediction records as Parquet, CSV or JSON lines."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path


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
    parser = subparsers.add_parser("records", help="export prediction records")
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
    export.add_argument("--store", required=True, help="the folder of model packages the mesh served (its store is "
                                                      "there), sqlite:///PATH or postgresql://...")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    export.set_defaults(func=_export)


def _export(args) -> int:
    from meshserve.core.progress import Progress
    from meshserve.sidecars.records.export import export
    from meshserve.sidecars.records.store import open_store

    output = Path(args.output)
    fmt = args.format or {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(output.suffix, "parquet")
    store = open_store(args.store)
    try:
        total = store.count_matching(args.model, args.version, args.since, args.until)
        if total == 0:
            print(f"meshserve: no records of model '{args.model}'"
                  f"{' version ' + args.version if args.version else ''} in that window of {args.store}",
                  file=sys.stderr)
        progress = Progress(total, f"exporting {args.model} records")
        rows = export(store.query(args.model, args.version, args.since, args.until, role=args.role), output, fmt,
                      progress=progress)
        progress.finish()
    finally:
        store.close()
    print(f"wrote {rows:,} rows ({progress.done:,} records) to {output} ({fmt})")
    return 0
