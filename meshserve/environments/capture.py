"""`meshserve package DIR --requirements FILE | --from-venv PATH`: record the Python environment a
model was trained in (not the one serving it) as `environment.python: {version, requirements}`.

`meshserve up` then builds that environment for the package (builder.py) and runs its adapter there.
"""

from __future__ import annotations

import argparse
import platform
from typing import Any

from meshserve.core.errors import ManifestError
from meshserve.environments.requirements import RequirementsError, read_requirements, venv_requirements


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--requirements", metavar="FILE",
                        help="Python models: a requirements or lock file with every version pinned (pip freeze, "
                             "uv pip compile); the model then runs in its own environment built from it")
    source.add_argument("--from-venv", metavar="PATH",
                        help="Python models: the virtual environment the model was trained in; every distribution "
                             "installed there is recorded with its version")
    parser.add_argument("--python", metavar="VERSION",
                        help="with --requirements: the Python version the model was trained with "
                             "(default: this one, %s)" % platform.python_version())


def environment_to_record(package, args: argparse.Namespace, capture_runtime) -> dict[str, Any]:
    """What `meshserve package` writes under `environment:`: the training environment given by
    --requirements/--from-venv, else what the runtime captures (`capture_runtime(package)`)."""
    trained_in = python_environment(package, args)
    return {"python": trained_in} if trained_in is not None else capture_runtime(package)


def python_environment(package, args: argparse.Namespace) -> dict[str, Any] | None:
    """`environment.python` from --requirements or --from-venv; None when neither is given."""
    if not (args.requirements or args.from_venv):
        if args.python:
            raise RequirementsError("--python goes with --requirements FILE")
        return None
    if package.manifest.runtime != "python":
        raise ManifestError(str(package.manifest_path), "runtime",
                            f"--requirements and --from-venv are for Python models, and this one is '{package.manifest.runtime}'",
                            "drop the option; `meshserve package DIR` records this runtime's own environment")
    if args.from_venv:
        if args.python:
            raise RequirementsError("--python goes with --requirements; --from-venv asks the environment's own Python")
        captured = venv_requirements(args.from_venv)
        for skipped in captured.skipped:
            print(f"  not recorded: {skipped}")
        return {"version": captured.python, "requirements": captured.requirements, "source": f"venv {args.from_venv}"}
    version = args.python or platform.python_version()
    if len(version.split(".")) < 2 or not all(p.isdigit() for p in version.split(".")):
        raise RequirementsError(f"--python {version!r} is not a Python version; write for example 3.11")
    return {"version": version, "requirements": read_requirements(args.requirements),
            "source": f"requirements {args.requirements}"}
