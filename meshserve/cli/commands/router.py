"""`meshserve router --table FILE --listen HOST:PORT`: the front service (what `up` runs).

The server module is imported only when the command runs: it pulls in the whole control plane,
which every other `meshserve` command would otherwise pay for at start."""

from __future__ import annotations

import argparse

from meshserve.router.arguments import add_arguments


def _run(args: argparse.Namespace) -> int:
    from meshserve.router import server

    return server.run(args)


def register(subparsers) -> None:
    parser = subparsers.add_parser("router", help="run the front gRPC router over a models table")
    add_arguments(parser)
    parser.set_defaults(func=_run)
