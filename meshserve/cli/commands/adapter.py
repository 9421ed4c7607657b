"""`meshserve adapter PACKAGE --listen HOST:PORT [--rest-listen HOST:PORT]`: serve one model package
(what `up` runs per package), over gRPC and, with --rest-listen, over HTTP/REST too.

The server module is imported only when the command runs (see router.py)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", help="model package directory (holds model.yaml)")
    parser.add_argument("--listen", default="127.0.0.1:9001", help="host:port to serve on")
    parser.add_argument("--rest-listen", default="",
                        help="host:port to also serve the Open Inference Protocol over HTTP/REST on (docs/rest.md); "
                             "none unless given")
    parser.add_argument("--tap-listen", default="", metavar="HOST:PORT",
                        help="Triton runtime only: serve the side tap here (Envoy's ext_proc in observability mode), "
                             "which records requests Envoy sends straight to Triton (docs/triton-guide.md)")


def _run(args: argparse.Namespace) -> int:
    from meshserve.adapters import server

    return server.run(args)


def register(subparsers) -> None:
    parser = subparsers.add_parser("adapter", help="serve one model package over gRPC")
    add_arguments(parser)
    parser.set_defaults(func=_run)
