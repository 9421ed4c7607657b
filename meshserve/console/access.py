"""Who is looking at the console, and what they may do: the control API's rules, read from the
same places.

Envoy's front listener has authenticated the caller (`x-meshserve-principal`, any client copy
removed) and stamped its address (`x-meshserve-peer`). A principal gets what the spec's
`security.principals` gives it: an admin may change traffic and read records, a records reader
may look and open records, any other principal sees nothing. A caller without a principal (a
mesh without authentication) is trusted as an admin when its address is in
`security.control_from`, as the control API trusts it, and sees nothing otherwise.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from meshserve.core.mesh_protocol import PEER_HEADER, PRINCIPAL_HEADER
from meshserve.spec.security_spec import SecuritySpec


@dataclass(frozen=True)
class Viewer:
    name: str  # the principal, or "peer ADDRESS" for a trusted peer
    may_look: bool  # the models, their charts, the deployment log
    may_read_records: bool  # single predictions: inputs and outputs
    may_change: bool  # weights, shadows, promotions, rollbacks, progressive rollouts

    def as_json(self) -> dict:
        return {"name": self.name, "may_look": self.may_look, "may_read_records": self.may_read_records,
                "may_change": self.may_change}


NOBODY = Viewer("", False, False, False)


class ConsoleAccess:
    def __init__(self, security: SecuritySpec):
        self.security = security
        self.trusted = [ipaddress.ip_network(n, strict=False) for n in security.control_from]

    def viewer(self, headers: dict[str, str], remote: str | None) -> Viewer:
        """The viewer of a request with HEADERS from REMOTE (the direct peer, when Envoy stamped none)."""
        principal = headers.get(PRINCIPAL_HEADER) if self.security.authenticates else None
        if principal:
            rules = self.security.principals.get(principal)
            if not self.security.principals:  # every authenticated principal may infer; none is an admin
                return Viewer(principal, False, False, False)
            if rules is None:
                return NOBODY
            return Viewer(principal, rules.admin or rules.records, rules.admin or rules.records, rules.admin)
        peer = headers.get(PEER_HEADER) or remote or ""
        if self._trusted(peer):
            return Viewer(f"peer {peer}", True, True, True)
        return NOBODY

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer.strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self.trusted)
