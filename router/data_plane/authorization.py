"""Which principal may call which model: the one rule Envoy cannot make at the front, because
the model's name is inside the message. Envoy has already authenticated the caller and put
its name in `x-meshserve-principal` (removing any copy a client sent); this check runs before
the router looks at anything else in the request.
"""

from __future__ import annotations

import json

from meshserve.core.errors import PermissionDenied, quoted
from meshserve.core.mesh_protocol import PRINCIPAL_HEADER, Metadata
from meshserve.spec.security_spec import SecuritySpec
from meshserve.spec.table_control import TableControl


def principal_of(metadata: Metadata) -> str | None:
    for key, value in metadata or ():
        if key == PRINCIPAL_HEADER:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return None


class ModelAccess:
    """The spec's per-model rules; with no authentication configured everyone may call every model."""

    def __init__(self, security: SecuritySpec | None = None):
        self.security = security or SecuritySpec()

    @classmethod
    def from_control(cls, control: TableControl) -> "ModelAccess":
        """The rules of the deployment `meshserve up` wrote beside the models table."""
        if control.deployment is None:
            return cls()
        return cls(SecuritySpec.model_validate(json.loads(control.deployment.read_text()).get("security") or {}))

    def check(self, metadata: Metadata, model: str) -> None:
        """Raise PERMISSION_DENIED unless the caller may call MODEL."""
        if not self.security.authenticates:
            return
        principal = principal_of(metadata)
        if principal is None:  # Envoy lets no unauthenticated call through; a direct caller has none
            raise PermissionDenied("this mesh requires authentication; call it through its front listener "
                                   "with a token or API key")
        if not self.security.may_call(principal, model):
            raise PermissionDenied(f"principal '{quoted(principal)}' may not call model '{quoted(model)}'; "
                                   "ask an operator to add it to security.principals in meshserve.yaml")
