"""The adapter's command-line arguments, declared once for `meshserve adapter` and
`python -m meshserve.adapters.server`.

Apart from server.py so the CLI declares them without importing the server (and the server
without importing the CLI, which would import it back).
"""

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
