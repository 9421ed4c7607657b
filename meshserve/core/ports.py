"""Local TCP ports for the processes a mesh starts."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the kernel's pick); the caller binds it soon after."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
