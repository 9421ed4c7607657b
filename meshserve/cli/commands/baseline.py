"""`meshserve baseline DIR --data train.csv|train.parquet`: the training data's feature statistics,
written into the package for the drift monitor (docs/drift.md)."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("baseline", help="compute a package's drift baseline from its training data")
    parser.add_argument("package", help="model package directory (holds model.yaml)")
    parser.add_argument("--data", required=True, help="training data: .csv, .parquet or .jsonl, one column per "
                                                      "feature (named as the signature names them)")
    parser.add_argument("--no-score", action="store_true",
                        help="do not run the model on the data for outputs missing from the file")
    parser.set_defaults(func=_baseline)


def _baseline(args) -> int:
    from meshserve.core.model_package import load_package
    from meshserve.sidecars.drift.api import write_baseline
    from meshserve.sidecars.drift.api import make_baseline

    package = load_package(args.package)
    baseline, path = make_baseline(package, Path(args.data), score_outputs=not args.no_score)
    write_baseline(baseline, path)
    inputs = sum(f.role == "input" for f in baseline.features)
    outputs = len(baseline.features) - inputs
    print(f"wrote the baseline of {package.name}:{package.version} to {path}: {baseline.rows:,} rows, "
          f"{inputs} input and {outputs} output columns")
    return 0
