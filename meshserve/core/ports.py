"""Local TCP ports for the processes a mesh starts."""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10000
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _can_bind(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class NoFreePort(RuntimeError):
    pass


def _configured_range() -> tuple[int, int] | None:
    from meshserve.core.settings import get_settings

    text = get_settings().internal_ports
    if not text:
        return None
    first, last = (int(part) for part in text.split("-"))
    if not 1024 <= first <= last <= 65535:
        raise NoFreePort(f"MESHSERVE_INTERNAL_PORTS={text} is not a range of ports FIRST-LAST within 1024-65535; "
                         "set it to, for example, 20000-20999")
    return first, last


def _from_range(host: str, first: int, last: int) -> int:
    """A port of the operator's range nothing listens on and this process has not handed out; in
    random order, since the mesh's processes pick ports of their own (Triton's) at the same time."""
    ports = list(range(first, last + 1))
    random.shuffle(ports)
    for port in ports:
        if port not in _handed_out and _can_bind(host, port):
            _handed_out.add(port)
            return port
    raise NoFreePort(f"no free port left in MESHSERVE_INTERNAL_PORTS={first}-{last} (the mesh needs a few per "
                     "replica): widen the range or stop what listens there")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now; the caller binds it soon after.

    From MESHSERVE_INTERNAL_PORTS when the operator set a range (firewalls); otherwise chosen below
    the kernel's ephemeral range: a port from that range can be taken, between this pick and the
    caller's bind, as the local end of any outgoing connection on the machine.
    """
    configured = _configured_range()
    if configured is not None:
        return _from_range(host, *configured)
    low = _ephemeral_low()
    if low - LOWEST_PORT >= 1000:
        for _ in range(200):
            port = random.randrange(LOWEST_PORT, low)
            if port not in _handed_out and _can_bind(host, port):
                _handed_out.add(port)
                return port
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
