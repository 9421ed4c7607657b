"""`meshserve models [FOLDER] [--mesh ADDRESS]`: every model version, its digest, and its role.

With `--mesh`, what a running mesh serves and the live role of each version (from its control
API); otherwise the packages and bundles in FOLDER (a registry of bundles, or a models folder)
and the role its meshserve.yaml starts each version with.
"""

from __future__ import annotations

import sys

from meshserve.cli.mesh_options import add_mesh_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list model versions with their digests and where each is deployed")
    parser.add_argument("folder", nargs="?", default=".", help="a folder of bundles or model packages (default: .)")
    add_mesh_options(parser, "--mesh", help="ask a running mesh (its client address) instead of reading a folder")
    parser.set_defaults(func=_models)


def roles(weights: dict[str, int], shadows: dict[str, float]) -> dict[str, str]:
    """Version -> its role in a split: primary (the heaviest), canary, shadow, or staged (weight 0)."""
    from meshserve.spec.model_table import newest

    total = sum(weights.values())
    heaviest = [v for v, w in weights.items() if total and w == max(weights.values())]
    # On a tie (a 50% canary) the newest version is the canary: new versions join, old ones serve.
    top = (heaviest[0] if len(heaviest) == 1 else sorted(set(heaviest) - {newest(heaviest)})[0]) if heaviest else None
    found = {}
    for version, weight in weights.items():
        if weight > 0:
            found[version] = f"{'primary' if version == top else 'canary'} {100 * weight / total:.1f}%"
        elif version not in shadows:
            found[version] = "staged (weight 0)"
    for version, fraction in shadows.items():
        found[version] = f"shadow {fraction:g}"
    return found


def _table(rows: list[tuple[str, ...]]) -> None:
    header = ("MODEL", "VERSION", "DIGEST", "ROLE", "RUNTIME", "FROM")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _models(args) -> int:
    return _from_mesh(args) if args.address else _from_folder(args)


def _from_mesh(args) -> int:
    import grpc

    from meshserve.cli.mesh_client import MeshClient
    from meshserve.v1 import control_pb2 as cpb

    mesh = MeshClient.from_args(args)
    with mesh.control() as control:
        try:
            answer = control.ListModels(cpb.ListModelsRequest(), timeout=15)
        except grpc.RpcError as exc:
            print(f"meshserve: {mesh.failure(exc)}", file=sys.stderr)
            return 1
    rows = []
    for model in answer.models:
        live = roles(dict(model.rollout.weights), dict(model.rollout.shadows))
        for version in model.versions:
            rows.append((model.name, version.version, version.digest[:16], live.get(version.version, "-"),
                         version.runtime, "ready" if version.ready else "NOT READY"))
    _table(rows)
    return 0


def _from_folder(args) -> int:
    from meshserve.core.errors import ManifestError
    from meshserve.core.model_package import discover_packages
    from meshserve.spec.deployment_spec import deployment_for, spec_path_for

    broken: list = []
    packages = discover_packages(args.folder, broken)
    spec = spec_path_for(args.folder)
    started, unknown = {}, None
    if spec.is_file():
        try:
            deployment = deployment_for(args.folder, packages, [b.model for b in broken if b.model])
        except ManifestError as exc:  # e.g. it names a version whose bundle was refused below
            unknown = exc
        else:
            for model, d in deployment.models.items():
                split = d.initial_rollout()
                started[model] = roles(split.weights, split.shadows)
    rows = []
    for package in sorted(packages, key=lambda p: (p.name, p.version)):
        source = package.bundle.name if package.bundle else str(package.directory)
        revision = package.manifest.provenance.code_revision
        rows.append((package.name, package.version, package.digest[:16],
                     started.get(package.name, {}).get(package.version, "-"), package.manifest.runtime,
                     source + (f" (code {revision[:12]})" if revision else "")))
    _table(rows)
    if unknown is not None:
        print(f"roles: unknown, {unknown}")
    else:
        print(f"roles: as {spec} starts them" if spec.is_file() else
              f"roles: none ({spec.name} absent); pass --mesh ADDRESS for a running mesh's")
    for package in broken:
        print(f"refused: {package.error}")
    return 0
