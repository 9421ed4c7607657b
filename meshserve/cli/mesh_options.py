"""The options of every command that talks to a running mesh, declared once so each such command
takes the same address, default address and TLS option (meshserve/cli/mesh_client.py uses them).

Kept apart from the client, which needs grpc: every command's options are declared each time
`meshserve` starts, and most commands never reach a mesh.
"""

from __future__ import annotations

CA_OPTION = "--ca"


class MeshOptionError(ValueError):
    """The options cannot reach a mesh (a CA file that is not there); the message says the fix."""


def add_mesh_options(parser, flag: str = "--address", help: str | None = None) -> None:
    """Add the address (into `args.address`, whatever FLAG is called) and `--ca` to PARSER."""
    parser.add_argument(flag, dest="address", default=None, metavar="ADDRESS",
                        help=help or "the mesh's client address (default MESHSERVE_LISTEN or 127.0.0.1:8001)")
    parser.add_argument(CA_OPTION, dest="ca", default=None, metavar="PEM",
                        help="connect with TLS, trusting this certificate or CA (default MESHSERVE_CLIENT_CA); "
                             "credentials come from MESHSERVE_CLIENT_TOKEN or MESHSERVE_CLIENT_API_KEY")
