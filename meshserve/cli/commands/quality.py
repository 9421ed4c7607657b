"""`meshserve quality MODEL`: live quality per version and role from recorded predictions and outcomes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from meshserve.cli.commands.records import _time

WINDOWS = {"m": 60, "h": 3600, "d": 86400}


def _window(text: str) -> float:
    try:
        return float(text[:-1]) * WINDOWS[text[-1]] if text[-1] in WINDOWS else float(text)
    except (ValueError, IndexError):
        raise ValueError(f"'{text}' is not a window; write e.g. 15m, 1h or 1d") from None


def register(subparsers) -> None:
    parser = subparsers.add_parser("quality", help="accuracy, AUC, MAE ... of each version on reported outcomes")
    parser.add_argument("model", help="model name")
    parser.add_argument("--store", required=True, help="the folder of model packages the mesh served, "
                                                      "sqlite:///PATH or postgresql://...")
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
    from meshserve.sidecars.records.quality import quality
    from meshserve.sidecars.records.quality_report import alerts_for, page, text
    from meshserve.cli.store_access import open_records_store

    store = open_records_store(args.store)
    try:
        report = quality(store.joined(args.model, args.since, args.until), window_s=args.window)
    finally:
        store.close()
    alerts = alerts_for(report, args.min_accuracy, args.max_mae, args.min_outcomes)
    report["alerts"] = alerts
    print(json.dumps(report, indent=2) if args.json else text(report, args.model, alerts))
    if args.html:
        Path(args.html).write_text(page(report, args.model, alerts))
        print(f"wrote {args.html}", file=sys.stderr)
    return 3 if alerts else 0
