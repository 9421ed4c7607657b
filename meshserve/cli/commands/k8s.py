"""`meshserve k8s render SPEC -o DIR`: Kubernetes manifests for the mesh a deployment spec describes.

The same spec and packages `meshserve up` runs on one machine; see docs/kubernetes.md.
"""

from __future__ import annotations

import sys
from pathlib import Path, PurePosixPath

from meshserve.cli.shared_options import add_spec_argument, models_dir_of_spec
from meshserve.core.errors import ManifestError


def register(subparsers) -> None:
    parser = subparsers.add_parser("k8s", help="Kubernetes manifests of the mesh")
    actions = parser.add_subparsers(dest="k8s_command", required=True, metavar="ACTION")
    render = actions.add_parser("render", help="write Kubernetes manifests for a deployment spec")
    add_spec_argument(render)
    render.add_argument("-o", "--out", required=True, help="folder for the manifests (kubectl apply -f DIR)")
    render.add_argument("--image", default="meshserve:latest",
                        help="image built from compose/Dockerfile, holding the packages (default meshserve:latest)")
    render.add_argument("--namespace", default="meshserve", help="namespace of every object (default meshserve)")
    render.add_argument("--models-root", default=None,
                        help="where the spec's folder of packages is inside the image (default /opt/meshserve/examples)")
    render.add_argument("--records-secret", default=None,
                        help="existing Secret with key store-url (a PostgreSQL URL) instead of the spec's records.store")
    render.add_argument("--router-replicas", default="2:10", metavar="MIN:MAX",
                        help="the router autoscaler's bounds (default 2:10)")
    render.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment for every router and adapter container, e.g. MESHSERVE_MAX_MESSAGE_BYTES "
                             "or OTEL_EXPORTER_OTLP_ENDPOINT (repeatable)")
    render.add_argument("--cluster-domain", default="cluster.local", help="the cluster's DNS domain")
    render.add_argument("--validate", action="store_true", help="check the Envoy configuration with `envoy --mode validate`")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    render.set_defaults(func=_render)


def _router_bounds(text: str) -> tuple[int, int]:
    low, _, high = text.partition(":")
    if not (low.isdigit() and high.isdigit()) or not 1 <= int(low) <= int(high):
        raise ManifestError("--router-replicas", "router-replicas", f"'{text}' is not MIN:MAX with 1 <= MIN <= MAX",
                            "write for example --router-replicas 2:10")
    return int(low), int(high)


def _env_pairs(items: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.replace("_", "").isalnum():
            raise ManifestError("--env", "env", f"'{item}' is not NAME=VALUE",
                                "write for example --env OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317")
        pairs.append((name, value))
    return tuple(pairs)


def _render(args) -> int:
    from meshserve.envoy.routing import EnvoyError
    from meshserve.envoy.process import validate_config
    from meshserve.kubernetes.envoy_config import render_for_cluster
    from meshserve.kubernetes.options import IMAGE_MODELS, ClusterOptions
    from meshserve.kubernetes.packages import read_packages
    from meshserve.kubernetes.render import render_cluster
    from meshserve.spec.deployment_spec import load_spec, resolve_spec, spec_path_for

    models_dir = models_dir_of_spec(args.spec)
    router_min, router_max = _router_bounds(args.router_replicas)
    options = ClusterOptions(image=args.image, namespace=args.namespace, cluster_domain=args.cluster_domain,
                             models_root=PurePosixPath(args.models_root) if args.models_root else IMAGE_MODELS,
                             router_min=router_min, router_max=router_max, records_secret=args.records_secret,
                             extra_env=_env_pairs(args.env))
    packages = read_packages(models_dir, options.models_root)
    available: dict[str, set[str]] = {}
    for package in packages:
        available.setdefault(package.name, set()).add(package.version)
    path = spec_path_for(models_dir)
    spec = resolve_spec(load_spec(path), available, str(path))
    manifests = render_cluster(spec, packages, options)
    if args.validate:
        try:
            validate_config(render_for_cluster(spec, options).inlined())
        except EnvoyError as exc:
            print(f"meshserve: {exc}", file=sys.stderr)
            return 1
        print("meshserve: envoy --mode validate: OK")
    for written in manifests.write(Path(args.out), str(path)):
        print(f"meshserve: wrote {written}")
    for note in manifests.notes:
        print(f"meshserve: note: {note}")
    print(f"meshserve: apply with: kubectl apply -f {args.out}")
    return 0
