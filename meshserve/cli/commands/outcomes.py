"""`meshserve outcomes FILE`: report true outcomes of past predictions, by request id, in bulk."""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("outcomes", help="report the true outcomes of past predictions from a CSV, "
                                                    "Parquet or JSONL file")
    parser.add_argument("file", help="rows with a request-id column and columns named after the model's outputs")
    parser.add_argument("--store", required=True, help="the folder of model packages the mesh served, "
                                                      "sqlite:///PATH or postgresql://...")
    parser.add_argument("--model", default=None, help="take only this model's output names as outcome columns")
    parser.add_argument("--id-column", default="request_id", help="the column holding request ids")
    parser.add_argument("--time-column", default="time", help="when the outcome happened (epoch seconds; "
                                                             "default: now)")
    parser.set_defaults(func=_outcomes)


def _outcomes(args) -> int:
    from meshserve.core.progress import Progress
    from meshserve.sidecars.records.outcomes import import_outcomes, read_rows
    from meshserve.cli.store_access import open_records_store

    path = Path(args.file)
    if not path.is_file():
        print(f"meshserve: {path}: no such file", file=sys.stderr)
        return 2
    store = open_records_store(args.store)
    try:
        outputs = None
        if args.model:
            outputs = model_outputs(store, args.model)
            if outputs is None:
                print(f"meshserve: no recorded prediction of model '{args.model}' in {args.store}", file=sys.stderr)
                return 1
        progress = Progress(None, f"reading outcomes from {path.name}")
        summary = import_outcomes(store, read_rows(path), outputs, args.id_column, args.time_column, progress)
        progress.finish()
    finally:
        store.close()
    for line in summary.lines():
        print(line)
    return 0 if summary.stored else 1


def model_outputs(store, model: str) -> list[str] | None:
    rows = store._rows(store._q("SELECT body FROM packages WHERE model = ? ORDER BY version DESC"), (model,))
    if not rows:
        return None
    import json

    return [o["name"] for o in json.loads(rows[0]["body"])["signature"]["outputs"]]
