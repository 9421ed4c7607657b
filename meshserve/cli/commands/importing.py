"""`meshserve import models:/NAME/VERSION | models:/NAME@ALIAS -o DIR`: a model package from the MLflow
Model Registry (meshserve/importing/; docs/mlflow.md)."""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("import", help="make a model package from a version of the MLflow Model Registry")
    parser.add_argument("model_uri", metavar="MODEL_URI",
                        help="models:/NAME/VERSION, or models:/NAME@ALIAS (pinned to the version it points at now)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="the package folder to write (an earlier import there is replaced)")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="the MLflow tracking server (default: $MLFLOW_TRACKING_URI)")
    parser.add_argument("--name", help="serve it under this model name (default: the registered model's name)")
    parser.add_argument("--signature", metavar="FILE", type=Path,
                        help="a YAML file with the signature (inputs, outputs), for a model logged without one")
    parser.set_defaults(func=_import)


def _import(args) -> int:
    from meshserve.importing.mlflow_package import build_package
    from meshserve.importing.mlflow_registry import resolve, tracking_uri_from
    from meshserve.importing.model_uri import ImportFailure, parse_model_uri

    try:
        uri = parse_model_uri(args.model_uri)
        version = resolve(uri, tracking_uri_from(args.tracking_uri))
        imported = build_package(version, Path(args.output), name=args.name, signature_file=args.signature)
    except ImportFailure as exc:
        print(f"meshserve import: {exc}", file=sys.stderr)
        return 2
    pinned = f" (@{version.alias} -> version {version.version}, pinned)" if version.alias else ""
    print(f"imported {uri}{pinned} as {imported.name}:{imported.version} into {imported.directory}")
    print(f"  {imported.flavour} flavour, artifacts sha256 {imported.artifacts_sha256[:16]}, "
          f"{imported.requirements} pinned requirements (`meshserve up` builds its own environment)")
    return 0
