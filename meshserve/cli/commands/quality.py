"""`meshserve quality MODEL`: live quality per version and role from recorded predictions and outcomes,
asked of the running mesh (meshserve.v1.Control/GetQuality) or read from `--store`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from meshserve.cli.commands.records import _time
from meshserve.cli.shared_options import add_records_options

WINDOWS = {"m": 60, "h": 3600, "d": 86400}


def _window(text: str) -> float:
    try:
        return float(text[:-1]) * WINDOWS[text[-1]] if text[-1] in WINDOWS else float(text)
    except (ValueError, IndexError):
        raise ValueError(f"'{text}' is not a window; write e.g. 15m, 1h or 1d") from None


def register(subparsers) -> None:
    parser = subparsers.add_parser("quality", help="accuracy, AUC, MAE ... of each version on reported outcomes")
    parser.add_argument("model", help="model name")
    add_records_options(parser)
    parser.add_argument("--since", type=_time, default=None, help="predictions from this time (ISO 8601 or epoch)")
    parser.add_argument("--until", type=_time, default=None, help="predictions before this time")
    parser.add_argument("--window", type=_window, default=3600.0, help="width of each point over time (default 1h)")
    parser.add_argument("--html", default=None, help="also write an HTML report with plots to this file")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--min-accuracy", type=float, default=None, help="alert (exit code 3) below this accuracy")
    parser.add_argument("--max-mae", type=float, default=None, help="alert (exit code 3) above this MAE")
    parser.add_argument("--min-outcomes", type=int, default=100,
                        help="outcomes a figure needs before it can raise an alert (default 100)")
    parser.set_defaults(func=_quality)


def _quality(args) -> int:
    from meshserve.cli.records_source import RecordsSource
    from meshserve.sidecars.records.api import alerts_for, page, text

    source = RecordsSource(args)
    report = _from_mesh(source, args) if source.through_mesh else _from_store(source, args)
    alerts = alerts_for(report, args.min_accuracy, args.max_mae, args.min_outcomes)
    report["alerts"] = alerts
    print(json.dumps(report, indent=2) if args.json else text(report, args.model, alerts))
    if args.html:
        Path(args.html).write_text(page(report, args.model, alerts))
        print(f"wrote {args.html}", file=sys.stderr)
    return 3 if alerts else 0


def _from_store(source, args) -> dict:
    from meshserve.sidecars.records.api import quality

    with source.store() as store:
        return quality(store.joined(args.model, args.since, args.until), window_s=args.window)


def _from_mesh(source, args) -> dict:
    from meshserve.cli.records_source import given
    from meshserve.v1 import control_pb2 as cpb

    request = cpb.GetQualityRequest(model=args.model, window_s=args.window, **given(since=args.since, until=args.until))
    return json.loads(source.call("GetQuality", request, timeout=600).quality_json)
