"""`meshserve adapter PACKAGE --listen HOST:PORT`: serve one model package (what `up` runs per package).

The server module is imported only when the command runs (see router.py)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", help="model package directory (holds model.yaml)")
    parser.add_argument("--listen", default="127.0.0.1:9001", help="host:port to serve on")


def _run(args: argparse.Namespace) -> int:
    from meshserve.adapters import server

    return server.run(args)


def register(subparsers) -> None:
    parser = subparsers.add_parser("adapter", help="serve one model package over gRPC")
    add_arguments(parser)
    parser.set_defaults(func=_run)
