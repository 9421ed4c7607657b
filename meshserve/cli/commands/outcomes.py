"""`meshserve outcomes FILE`: report true outcomes of past predictions, by request id, in bulk.

The file is read here and its outcomes stored in batches by the running mesh
(meshserve.v1.Control/ImportOutcomes, for an admin), or straight into `--store`; the summary is
the same either way, because the same importer counts them (sidecars/records/outcomes.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from meshserve.cli.shared_options import add_records_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("outcomes", help="report the true outcomes of past predictions from a CSV, "
                                                    "Parquet or JSONL file")
    parser.add_argument("file", help="rows with a request-id column and columns named after the model's outputs")
    add_records_options(parser)
    parser.add_argument("--model", default=None, help="take only this model's output names as outcome columns")
    parser.add_argument("--id-column", default="request_id", help="the column holding request ids")
    parser.add_argument("--time-column", default="time", help="when the outcome happened (epoch seconds; "
                                                             "default: now)")
    parser.set_defaults(func=_outcomes)


def _outcomes(args) -> int:
    from meshserve.cli.records_source import RecordsSource

    path = Path(args.file)
    if not path.is_file():
        print(f"meshserve: {path}: no such file", file=sys.stderr)
        return 2
    source = RecordsSource(args)
    if source.through_mesh:
        return _import(args, path, MeshOutcomes(source), served_outputs(source, args.model) if args.model else None)
    with source.store() as store:
        outputs = model_outputs(store, args.model) if args.model else None
        if args.model and outputs is None:
            print(f"meshserve: no recorded prediction of model '{args.model}' in {args.store}", file=sys.stderr)
            return 1
        return _import(args, path, store, outputs)


def _import(args, path: Path, store, outputs: list[str] | None) -> int:
    from meshserve.core.progress import Progress
    from meshserve.sidecars.records.api import import_outcomes, read_rows

    progress = Progress(None, f"reading outcomes from {path.name}")
    summary = import_outcomes(store, read_rows(path), outputs, args.id_column, args.time_column, progress)
    progress.finish()
    for line in summary.lines():
        print(line)
    return 0 if summary.stored else 1


class MeshOutcomes:
    """The one store method the importer calls, answered by the running mesh."""

    def __init__(self, source):
        self.source = source

    def save_outcomes(self, outcomes: list[tuple[str, float, dict]]) -> tuple[set[str], set[str]]:
        from meshserve.v1 import control_pb2 as cpb

        if not outcomes:
            return set(), set()
        rows = [cpb.OutcomeRow(request_id=request_id, time=when, values_json=json.dumps(values))
                for request_id, when, values in outcomes]
        answer = self.source.call("ImportOutcomes", cpb.ImportOutcomesRequest(outcomes=rows), timeout=120)
        return set(answer.reported_before), set(answer.recorded)


def served_outputs(source, model: str) -> list[str]:
    """The output names of MODEL's newest version the mesh serves."""
    from meshserve.v1 import control_pb2 as cpb

    versions = source.call("GetModel", cpb.GetModelRequest(name=model), timeout=30).versions
    return [o.name for o in max(versions, key=lambda v: v.version).outputs]


def model_outputs(store, model: str) -> list[str] | None:
    package = store.latest_package(model)
    return None if package is None else [o["name"] for o in package["signature"]["outputs"]]
