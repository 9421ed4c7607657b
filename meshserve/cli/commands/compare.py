"""`meshserve compare MODEL`: shadows against their primary on the same requests, canaries against it
over the window both were live, each with a verdict, from the records."""

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
    judged = parser.add_argument_group("verdict thresholds (each verdict states the ones it used)")
    judged.add_argument("--min-requests", type=int, default=100,
                        help="requests (pairs for a shadow) and outcomes needed on each side to judge (100)")
    judged.add_argument("--alpha", type=float, default=0.05, help="a difference counts below this p-value (0.05)")
    judged.add_argument("--min-agreement", type=float, default=0.95,
                        help="share of class rows a shadow must answer as its primary did, without outcomes (0.95)")
    judged.add_argument("--max-distance", type=float, default=0.1,
                        help="largest Jensen-Shannon (labels) or Kolmogorov-Smirnov (numeric columns) "
                             "difference from the primary, without outcomes (0.1)")
    judged.add_argument("--max-error-rate-increase", type=float, default=0.01,
                        help="largest rise in error rate over the primary's (0.01: one point)")
    parser.set_defaults(func=_compare)


def _compare(args) -> int:
    from meshserve.sidecars.compare.comparison import compare
    from meshserve.sidecars.compare.report import page, text
    from meshserve.sidecars.compare.verdict import Thresholds
    from meshserve.cli.store_access import open_records_store

    store = open_records_store(args.store)
    try:
        thresholds = Thresholds(args.min_requests, args.alpha, args.min_agreement, args.max_distance,
                                args.max_error_rate_increase)
        report = compare(store, args.model, args.since, args.until, thresholds=thresholds)
    finally:
        store.close()
    print(json.dumps(report, indent=2) if args.json else text(report))
    if args.html:
        Path(args.html).write_text(page(report))
        print(f"wrote {args.html}", file=sys.stderr)
    return 0
