"""The router's command-line arguments, declared once for `meshserve router` and
`python -m meshserve.router.server`.

Apart from server.py so the CLI declares them without importing the server (and the server
without importing the CLI, which would import it back).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, help="models table JSON written by `meshserve up`")
    parser.add_argument("--listen", default="127.0.0.1:8001", help="host:port clients connect to")
    parser.add_argument("--rest-listen", default="", help="host:port of the REST listener (none when empty)")
