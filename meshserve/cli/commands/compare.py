"""`meshserve compare MODEL`: shadows against their primary on the same requests, canaries against it
over the window both were live, each with a verdict, from the records (asked of the running
mesh, meshserve.v1.Control/GetComparison, or read from `--store`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from meshserve.cli.commands.records import _time
from meshserve.cli.shared_options import add_records_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="compare a model's shadow and canary versions with its primary")
    parser.add_argument("model", help="model name")
    add_records_options(parser)
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
    from meshserve.cli.records_source import RecordsSource
    from meshserve.sidecars.compare.api import page, text
    from meshserve.sidecars.compare.api import Thresholds

    thresholds = Thresholds(args.min_requests, args.alpha, args.min_agreement, args.max_distance,
                            args.max_error_rate_increase)
    source = RecordsSource(args)
    report = _from_mesh(source, args, thresholds) if source.through_mesh else _from_store(source, args, thresholds)
    print(json.dumps(report, indent=2) if args.json else text(report))
    if args.html:
        Path(args.html).write_text(page(report))
        print(f"wrote {args.html}", file=sys.stderr)
    return 0


def _from_store(source, args, thresholds) -> dict:
    from meshserve.sidecars.compare.api import compare

    with source.store() as store:
        return compare(store, args.model, args.since, args.until, thresholds=thresholds)


def _from_mesh(source, args, thresholds) -> dict:
    from meshserve.cli.records_source import given
    from meshserve.v1 import control_pb2 as cpb

    request = cpb.GetComparisonRequest(model=args.model, thresholds=cpb.ComparisonThresholds(**thresholds.as_dict()),
                                       **given(since=args.since, until=args.until))
    return json.loads(source.call("GetComparison", request, timeout=600).comparison_json)
