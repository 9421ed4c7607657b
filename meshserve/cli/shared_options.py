"""The options several commands share, declared once so each takes the same names, defaults and
help, and resolves them the same way after parsing:

- where records come from: the running mesh (its address and credentials, mesh_options.py) or a
  records store read directly (`--store`), for audit, compare, drift, quality, outcomes, explain
  and records export (meshserve/cli/records_source.py reads them);
- a deployment spec given as `meshserve.yaml` or the folder that holds it (envoy render, k8s render);
- the folder of model packages whose baselines and spec a command reads (drift `--models`).

Kept free of heavy imports: every command's options are declared each time `meshserve` starts.
"""

from __future__ import annotations

from pathlib import Path

from meshserve.cli.mesh_options import add_mesh_options

STORE_OPTION = "--store"
STORE_FORMS = "the folder of model packages the mesh served, sqlite:///PATH or postgresql://..."
SPEC_HELP = "meshserve.yaml"  # for help texts, which are written before any spec module is imported


class OptionError(ValueError):
    """Options that cannot work together or name nothing usable; the message says the fix."""


def add_store_option(parser, required: bool = False) -> None:
    """`--store`, into `args.store`: a records store to read directly."""
    parser.add_argument(STORE_OPTION, dest="store", required=required, default=None, metavar="STORE",
                        help=f"the records store: {STORE_FORMS}" if required else
                        f"read this records store directly instead of asking the running mesh: {STORE_FORMS} "
                        "(needed only when no mesh runs)")


def add_records_options(parser) -> None:
    """Where a records command reads: the running mesh (address, --ca, credentials), else `--store`."""
    add_mesh_options(parser)
    add_store_option(parser)


def add_spec_argument(parser) -> None:
    """The positional SPEC: a meshserve.yaml or the folder of model packages that holds it."""
    parser.add_argument("spec", help=f"{SPEC_HELP}, or the folder of model packages that holds it")


def models_dir_of_spec(text: str) -> Path:
    """The folder of model packages a SPEC argument names (the spec file's folder, or the folder itself)."""
    from meshserve.spec.deployment_spec import SPEC_NAME

    spec = Path(text)
    if spec.is_dir():
        return spec
    if spec.name != SPEC_NAME:
        raise OptionError(f"{spec} is not a {SPEC_NAME}; pass the spec file or its folder")
    return spec.parent


def add_models_option(parser, purpose: str) -> None:
    """`--models DIR`, into `args.models`: the folder of model packages (and meshserve.yaml) to read."""
    parser.add_argument("--models", default=None, metavar="DIR",
                        help=f"folder of the model packages and {SPEC_HELP} ({purpose}; default: --store when it is "
                             "that folder)")


def models_dir_of(args) -> Path | None:
    """`--models`, else `--store` when it names a folder of model packages, else None."""
    if getattr(args, "models", None):
        return Path(args.models)
    store = getattr(args, "store", None)
    return Path(store) if store and Path(store).is_dir() else None
