"""`meshserve adapter PACKAGE --listen HOST:PORT [--rest-listen HOST:PORT]`: serve one model package
(what `up` runs per package), over gRPC and, with --rest-listen, over HTTP/REST too.

The server module is imported only when the command runs (see router.py)."""

from __future__ import annotations

import argparse

from meshserve.adapters.arguments import add_arguments


def _run(args: argparse.Namespace) -> int:
    from meshserve.adapters import server

    return server.run(args)


def register(subparsers) -> None:
    parser = subparsers.add_parser("adapter", help="serve one model package over gRPC")
    add_arguments(parser)
    parser.set_defaults(func=_run)
