"""`meshserve grafana dashboards FOLDER`: write meshserve's Grafana dashboards as JSON.

The dashboards are code (meshserve/observability/dashboards.py); this writes the files a
Grafana file provider loads. compose/grafana/dashboards/ holds the output for the compose
stack; point another Grafana's provider at any folder written here.
"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("grafana", help="Grafana dashboards of the mesh")
    actions = parser.add_subparsers(dest="grafana_command", required=True, metavar="ACTION")
    dashboards = actions.add_parser("dashboards", help="write the mesh overview, model and health dashboards as JSON")
    dashboards.add_argument("folder", help="folder to write the dashboards' JSON files into (created if missing)")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    dashboards.set_defaults(func=_dashboards)


def _dashboards(args) -> int:
    from meshserve.observability.dashboards import write

    for path in write(Path(args.folder)):
        print(path)
    return 0
