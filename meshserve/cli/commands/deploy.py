"""`meshserve deploy MODEL VERSION|BUNDLE --shadow [F] | --canary PERCENT | --primary`: put a
version live once the validation gate passes.

The mesh must already run the version (meshserve.yaml lists it, e.g. as a variant with weight
0). Its control service runs the gate (meshserve/deploy/gate.py) and only then changes the
split; a refused version changes nothing live. With a BUNDLE, its digest is checked here and
the mesh must run exactly that bundle.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from meshserve.core.settings import get_settings


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
    parser.add_argument("model", help="the model")
    parser.add_argument("version", metavar="VERSION|BUNDLE", help="a version the mesh runs, or the bundle it runs")
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
    parser.add_argument("--address", default=None,
                        help="the mesh's client address (default MESHSERVE_LISTEN or 127.0.0.1:8001)")
    parser.add_argument("--ca", default=None, metavar="PEM",
                        help="connect with TLS, trusting this certificate or CA (default MESHSERVE_CLIENT_CA)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for the gate and the change (default 300)")
    parser.set_defaults(func=_deploy)


def _deploy(args) -> int:
    import grpc

    from meshserve.cli.mesh_channel import credentials_metadata, open_channel
    from meshserve.v1 import control_pb2 as cpb
    from meshserve.v1 import control_pb2_grpc as cpb_grpc

    version, digest = _version_and_digest(args.model, args.version)
    role, amount = ("shadow", args.shadow) if args.shadow is not None else (
        ("canary", args.canary) if args.canary is not None else ("primary", 0.0))
    request = cpb.DeployRequest(model=args.model, version=version, role=role, amount=amount,
                                allow_signature_change=args.allow_signature_change, strict=args.strict,
                                bundle_digest=digest)
    with open_channel(args.address or get_settings().listen, args.ca) as channel:
        try:
            answer = cpb_grpc.ControlStub(channel).Deploy(request, timeout=args.timeout,
                                                          metadata=credentials_metadata())
        except grpc.RpcError as exc:
            print(f"meshserve: {exc.code().name}: {exc.details()}", file=sys.stderr)
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
    what = {"shadow": f"shadow ({amount:g} of requests)", "canary": f"canary ({amount:g}%)", "primary": "primary"}[role]
    print(f"deployed {args.model}:{version} as {what}: {split}")
    return 0


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
