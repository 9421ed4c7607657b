"""The `meshserve` command. Each subcommand lives in its own module under meshserve/cli/commands/
and exposes `register(subparsers)`; this file only collects them."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

import meshserve.cli.commands
from meshserve.cli.mesh_options import MeshOptionError
from meshserve.cli.records_source import RecordsSourceError
from meshserve.cli.shared_options import OptionError
from meshserve.cli.store_access import StoreAccessError
from meshserve.core.errors import ManifestError
from meshserve.core.settings import Settings, get_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meshserve", description="Serve R, Java, Python and Triton models behind one gRPC contract.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback when something fails")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(meshserve.cli.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"meshserve.cli.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.debug:  # the processes it starts (adapters, the router) show their tracebacks too
        os.environ.update(Settings.child_environment(debug=True))
        get_settings.cache_clear()
    try:
        return int(args.func(args) or 0)
    except (ManifestError, MeshOptionError, OptionError, StoreAccessError) as exc:
        print(f"meshserve: {exc}", file=sys.stderr)
        return 2
    except RecordsSourceError as exc:
        print(f"meshserve: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"meshserve: {exc} ({type(exc).__name__}; run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
