"""`meshserve up DIR`: serve every model package in DIR until Ctrl-C or SIGTERM."""

import asyncio

from meshserve.core.settings import get_settings


def register(subparsers) -> None:
    parser = subparsers.add_parser("up", help="start the mesh on a folder of model packages")
    parser.add_argument("models", help="folder holding model packages (each a directory with model.yaml)")
    parser.add_argument("--listen", default=None,
                        help="host:port clients connect to (default MESHSERVE_LISTEN or 127.0.0.1:8001; port 0 picks one)")
    parser.add_argument("--run-dir", default=None, help="where run-time files go (default: a temporary folder)")
    parser.add_argument("--no-envoy", action="store_true",
                        help="run without Envoy: the router calls each package's adapter directly "
                             "(no weights, shadows or replicas from meshserve.yaml)")
    parser.add_argument("--strict", action="store_true",
                        help="refuse to start when any model package is broken (default: serve the others and "
                             "name the broken ones)")
    parser.set_defaults(func=_up)


def _up(args) -> int:
    from meshserve.launcher.mesh import run_mesh

    return asyncio.run(run_mesh(args.models, args.listen or get_settings().listen, args.run_dir,
                                envoy=not args.no_envoy, strict=args.strict))
