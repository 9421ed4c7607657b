"""`meshserve compare MODEL`: shadows against their primary on the same requests, canaries against it
as distributions over the same window, from the records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from meshserve.cli.commands.records import _time


def register(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="compare a model's shadow and canary versions with its primary")
    parser.add_argument("model", help="model name")
    parser.add_argument("--store", required=True, help="the folder of model packages the mesh served, "
                                                      "sqlite:///PATH or postgresql://...")
    parser.add_argument("--since", type=_time, default=None, help="from this time (ISO 8601 or epoch seconds)")
    parser.add_argument("--until", type=_time, default=None, help="before this time")
    parser.add_argument("--html", default=None, help="also write an HTML report with plots to this file")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(func=_compare)


def _compare(args) -> int:
    from meshserve.sidecars.compare.comparison import compare
    from meshserve.sidecars.compare.report import page, text
    from meshserve.cli.store_access import open_records_store

    store = open_records_store(args.store)
    try:
        report = compare(store, args.model, args.since, args.until)
    finally:
        store.close()
    print(json.dumps(report, indent=2) if args.json else text(report))
    if args.html:
        Path(args.html).write_text(page(report))
        print(f"wrote {args.html}", file=sys.stderr)
    return 0
