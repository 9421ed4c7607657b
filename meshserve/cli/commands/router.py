"""`meshserve router --table FILE --listen HOST:PORT`: the front service (what `up` runs).

The server module is imported only when the command runs: it pulls in the whole control plane,
which every other `meshserve` command would otherwise pay for at start."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, help="models table JSON written by `meshserve up`")
    parser.add_argument("--listen", default="127.0.0.1:8001", help="host:port clients connect to")
    parser.add_argument("--rest-listen", default="", help="host:port of the REST listener (none when empty)")


def _run(args: argparse.Namespace) -> int:
    from meshserve.router import server

    return server.run(args)


def register(subparsers) -> None:
    parser = subparsers.add_parser("router", help="run the front gRPC router over a models table")
    add_arguments(parser)
    parser.set_defaults(func=_run)
