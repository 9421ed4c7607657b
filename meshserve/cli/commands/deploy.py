"""`meshserve deploy MODEL VERSION|BUNDLE --shadow [F] | --canary PERCENT | --primary`: put a
version live once the validation gate passes.

The mesh runs the version already (meshserve.yaml lists it, or its package was copied into the
models folder and the mesh loaded it at weight 0), or its package is in the models folder and
not loaded yet: the mesh waits for its package watcher to load it (MESHSERVE_DEPLOY_WAIT_S),
and this command says so while it waits. Its control service runs the gate
(meshserve/deploy/gate.py) and only then changes the split; a refused version changes nothing
live. With a BUNDLE, its digest is checked here and the mesh must run exactly that bundle.

`meshserve deploy models:/NAME/VERSION|models:/NAME@ALIAS --canary P ...` imports that version
from the MLflow Model Registry (as `meshserve import` does) into the running mesh's models
folder, which the mesh's control API names to an admin, then deploys it as above.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from meshserve.cli.mesh_options import add_mesh_options


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a fraction from 0 to 1") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not a fraction above 0 and at most 1")
    return value


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a percent") from None
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"{value:g} is not a percent above 0 and below 100 (use --primary for all)")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser("deploy", help="put a running version live as shadow, canary or primary, "
                                                  "once the validation gate passes")
    parser.add_argument("model", metavar="MODEL|MODEL_URI",
                        help="the model, or models:/NAME/VERSION or models:/NAME@ALIAS of the MLflow Model Registry "
                             "(imported into the mesh's models folder first)")
    parser.add_argument("version", metavar="VERSION|BUNDLE", nargs="?", default=None,
                        help="a version the mesh runs or has in its models folder, or a bundle (none with MODEL_URI)")
    role = parser.add_mutually_exclusive_group(required=True)
    role.add_argument("--shadow", nargs="?", type=_fraction, const=1.0, default=None, metavar="FRACTION",
                      help="mirror this fraction of requests to it (default 1: all); its answers reach no client")
    role.add_argument("--canary", type=_percent, default=None, metavar="PERCENT",
                      help="give it PERCENT of primary traffic; the other versions share the rest")
    role.add_argument("--primary", action="store_true", help="give it all primary traffic")
    parser.add_argument("--allow-signature-change", action="store_true",
                        help="let its inputs or outputs differ from the live version's")
    parser.add_argument("--strict", action="store_true",
                        help="refuse it when its recorded environment differs from the running one (default: warn)")
    add_mesh_options(parser)
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for the version to load, the gate and the change (default 300)")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="with MODEL_URI: the MLflow tracking server (default: $MLFLOW_TRACKING_URI)")
    parser.set_defaults(func=_deploy)


def _deploy(args) -> int:
    import grpc

    from meshserve.cli.mesh_client import MeshClient
    from meshserve.v1 import control_pb2 as cpb

    mesh = MeshClient.from_args(args)
    role, amount = ("shadow", args.shadow) if args.shadow is not None else (
        ("canary", args.canary) if args.canary is not None else ("primary", 0.0))
    with mesh.control() as stub:
        try:
            if args.model.startswith("models:/"):
                if args.version is not None:
                    print(f"meshserve: {args.model} names its version already; drop '{args.version}'", file=sys.stderr)
                    return 2
                imported = _import_into_mesh(stub, mesh.address, args.model, args.tracking_uri)
                if isinstance(imported, int):
                    return imported
                args.model, version, digest = *imported, ""
            elif args.version is None:
                print("meshserve: VERSION: name the version to deploy, e.g. `meshserve deploy MODEL 2 --canary 10`, "
                      "or give a models:/NAME/VERSION URI", file=sys.stderr)
                return 2
            else:
                version, digest = _version_and_digest(args.model, args.version)
            request = cpb.DeployRequest(model=args.model, version=version, role=role, amount=amount,
                                        allow_signature_change=args.allow_signature_change, strict=args.strict,
                                        bundle_digest=digest)
            if not _runs(stub, args.model, version):
                print(f"meshserve: {args.model}:{version} is not loaded yet; if its package is in the mesh's models "
                      "folder, the mesh loads it first (waiting up to MESHSERVE_DEPLOY_WAIT_S, default 120 s)",
                      file=sys.stderr, flush=True)
            answer = _wait_for(stub.Deploy.future(request, timeout=args.timeout),
                               f"{args.model}:{version}")
        except grpc.RpcError as exc:
            print(f"meshserve: {mesh.failure(exc)}", file=sys.stderr)
            return 1
    print(f"validation gate for {args.model}:{version} (digest {answer.digest[:16]}...):")
    for check in answer.checks:
        mark = "FAIL" if not check.passed else ("warn" if check.warnings else "ok  ")
        print(f"  {mark}  {check.name}: {check.reason}")
        for warning in list(check.warnings)[:8]:
            print(f"          {warning}")
    split = _describe(answer.rollout)
    if not answer.deployed:
        refused = ", ".join(c.name for c in answer.checks if not c.passed)
        print(f"meshserve: not deployed: the gate refused {args.model}:{version} ({refused}); nothing live changed "
              f"({split})", file=sys.stderr)
        return 1
    print(f"deployed {args.model}:{version} as {role_share(role, amount)}: {split}")
    return 0


def role_share(role: str, amount: float) -> str:
    """The role with its share of traffic as a person reads it: a shadow's fraction (0.5) as a
    percentage of the requests it mirrors, a canary's percent as it was given."""
    if role == "shadow":
        return "shadow (every request)" if amount >= 1 else f"shadow ({amount * 100:.4g}% of requests)"
    if role == "canary":
        return f"canary ({amount:g}%)"
    return role


def _runs(stub, model: str, version: str) -> bool:
    """Whether the mesh lists MODEL at VERSION now (a caller who may not read it: assume it does)."""
    import grpc

    from meshserve.v1 import control_pb2 as cpb

    try:
        found = stub.GetModel(cpb.GetModelRequest(name=model), timeout=30)
    except grpc.RpcError as exc:
        return exc.code() != grpc.StatusCode.NOT_FOUND  # the Deploy call says what else is wrong
    return any(v.version == version for v in found.versions)


def _wait_for(call, what: str, every_s: float = 10.0):
    """The answer of CALL (a gRPC future), saying every EVERY_S seconds that it is still on its way."""
    import grpc

    waited = 0.0
    while True:
        try:
            return call.result(timeout=every_s)
        except grpc.FutureTimeoutError:
            waited += every_s
            print(f"meshserve: still deploying {what} ({waited:.0f} s: loading it, or running the gate)",
                  file=sys.stderr, flush=True)


def _import_into_mesh(stub, address: str, model_uri: str, tracking_uri: str | None) -> tuple[str, str] | int:
    """Import MODEL_URI into the models folder of the mesh at ADDRESS; (name, version), or an exit code."""
    from meshserve.importing.mlflow_package import build_package
    from meshserve.importing.mlflow_registry import resolve, tracking_uri_from
    from meshserve.importing.model_uri import ImportFailure, parse_model_uri
    from meshserve.spec.models_folder import named_in
    from meshserve.v1 import control_pb2 as cpb

    folder = stub.ListModels(cpb.ListModelsRequest(), timeout=30).models_dir
    if not folder:
        print(f"meshserve: the mesh at {address} does not name its models folder (it names it to admins only); "
              f"import with `meshserve import {model_uri} -o MODELS_DIR/NAME` into the folder `meshserve up` "
              "serves, then `meshserve deploy NAME VERSION ...`", file=sys.stderr)
        return 2
    models = Path(folder)
    if not models.is_dir():
        print(f"meshserve: the mesh at {address} serves the models folder {folder}, which is not on this machine; "
              "run this command where the mesh runs", file=sys.stderr)
        return 2
    try:
        uri = parse_model_uri(model_uri)
        version = resolve(uri, tracking_uri_from(tracking_uri))
        target = models / f"{version.name}-{version.version}"
        if named_in(target) == (version.name, version.version):
            print(f"{uri} (version {version.version}) is in the models folder already: {target}")
            return version.name, version.version
        # Imported beside the folder's packages under a hidden name, renamed into place when whole,
        # so the mesh's package watcher never reads half an import.
        imported = build_package(version, target)
    except ImportFailure as exc:
        print(f"meshserve: {exc}", file=sys.stderr)
        return 2
    pinned = f" (@{version.alias} -> version {version.version}, pinned)" if version.alias else ""
    print(f"imported {uri}{pinned} as {imported.name}:{imported.version} into {imported.directory}", flush=True)
    return imported.name, imported.version


def _version_and_digest(model: str, given: str) -> tuple[str, str]:
    """VERSION as given, or a bundle's version and digest once its bytes are checked."""
    from meshserve.core.bundle import SUFFIX, unpack_bundle
    from meshserve.core.errors import ManifestError
    from meshserve.core.model_package import load_package

    if not given.endswith(SUFFIX):
        return given, ""
    path = Path(given)
    if not path.is_file():
        raise ManifestError(given, "(file)", "no such bundle", "give the path of a .msbundle file, or a version")
    package = load_package(unpack_bundle(path))
    if package.name != model:
        raise ManifestError(given, "name", f"the bundle holds model '{package.name}', not '{model}'",
                            f"deploy it as `meshserve deploy {package.name} {given} ...`")
    return package.version, package.digest


def _describe(rollout) -> str:
    total = sum(rollout.weights.values()) or 1
    weights = ", ".join(f"{v}={w} ({100 * w / total:.1f}%)" for v, w in sorted(rollout.weights.items()))
    shadows = ", ".join(f"{v}={f:g}" for v, f in sorted(rollout.shadows.items())) or "none"
    return f"weights {weights}; shadows {shadows}"
