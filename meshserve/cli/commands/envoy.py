"""`meshserve envoy render SPEC`: print the Envoy configuration `meshserve up` would run.

The same renderer serves both, so an operator can read and diff what will run before it does.
"""

from __future__ import annotations

import sys
from pathlib import Path

from meshserve.cli.shared_options import add_spec_argument, models_dir_of_spec
from meshserve.core.settings import get_settings


def register(subparsers) -> None:
    parser = subparsers.add_parser("envoy", help="Envoy configuration of the mesh")
    actions = parser.add_subparsers(dest="envoy_command", required=True, metavar="ACTION")
    render = actions.add_parser("render", help="print the Envoy bootstrap, cluster and route files for a deployment spec")
    add_spec_argument(render)
    render.add_argument("--listen", default=None, help="front listener host:port (default MESHSERVE_LISTEN)")
    render.add_argument("--first-port", type=int, default=9100,
                        help="mesh listener, admin, router and adapter ports are numbered from here (default 9100)")
    render.add_argument("--run-dir", default=".meshserve/envoy", help="folder the file paths in the output point to")
    render.add_argument("--out", default=None, help="also write the files under this folder (instead of --run-dir paths)")
    render.add_argument("--validate", action="store_true", help="check the result with `envoy --mode validate`")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    render.set_defaults(func=_render)


def _render(args) -> int:
    from meshserve.core.model_package import discover_packages
    from meshserve.spec.deployment_spec import deployment_for
    from meshserve.envoy.routing import EnvoyError
    from meshserve.envoy.render import EnvoyLayout, UpstreamAddresses
    from meshserve.envoy.process import validate_config
    from meshserve.envoy.render import render

    models_dir = models_dir_of_spec(args.spec)
    from meshserve.core.replica_slots import replica_slots

    packages = discover_packages(models_dir)
    spec = deployment_for(models_dir, packages)
    host = "127.0.0.1"
    port = args.first_port
    run_dir = Path(args.out or args.run_dir).resolve()
    layout = EnvoyLayout(run_dir=run_dir, front=args.listen or get_settings().listen,
                         mesh=f"{host}:{port}", admin=f"{host}:{port + 1}")
    upstreams = UpstreamAddresses.sequential(spec, host, port + 2, rest=True)  # as `meshserve up` runs it
    upstreams.slots.update({(p.name, p.version): replica_slots(p.manifest) for p in packages})
    config = render(layout, spec, upstreams)
    print(config.documents(layout), end="")
    if args.out:
        config.write(layout)
    if args.validate:
        try:
            validate_config(config.inlined())
        except EnvoyError as exc:
            print(f"meshserve: {exc}", file=sys.stderr)
            return 1
        print("# envoy --mode validate: OK", file=sys.stderr)
    return 0
