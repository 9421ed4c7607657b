"""Where a records command reads: the running mesh, or a records store opened directly.

Records hold what clients sent, so the store is private to the mesh's user; the running mesh
answers the same questions through its control API (meshserve.v1.Control) to anyone holding
the right credentials. So a command asks the mesh at its address (the same default address,
`--ca` and credential variables as every other command, meshserve/cli/mesh_client.py) unless
`--store` names a store to read instead, which is needed only when no mesh runs. Either way the
same functions compute the answer (the mesh runs them on its store), so the output is the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from meshserve.cli.shared_options import STORE_OPTION

# How grpc words a call that found nothing listening at the address.
NOTHING_LISTENS = ("connection refused", "name resolution", "dns")  # not a TLS mismatch, which mesh_client explains


class RecordsSourceError(RuntimeError):
    """The records could not be read from the mesh nor a store; the message says what to do."""

    exit_code = 1


class NoRecordsSource(RecordsSourceError):
    """No mesh answers and no --store was given: nothing to read from."""

    exit_code = 2


@dataclass
class RecordsSource:
    """The store named by `--store`, or else the mesh the address options name."""

    args: Any

    @property
    def store_text(self) -> str | None:
        return getattr(self.args, "store", None)

    @property
    def through_mesh(self) -> bool:
        return not self.store_text

    def where(self) -> str:
        """Where the records are, for messages: the store as given, or the mesh's address."""
        return self.store_text if self.store_text else f"the mesh at {self.mesh.address}"

    @property
    def mesh(self):
        from meshserve.cli.mesh_client import MeshClient

        if not hasattr(self, "_mesh"):
            self._mesh = MeshClient.from_args(self.args)
        return self._mesh

    @contextmanager
    def store(self) -> Iterator:
        """The store `--store` names, open for the duration of the block."""
        from meshserve.cli.store_access import open_records_store

        store = open_records_store(self.store_text)
        try:
            yield store
        finally:
            store.close()

    def call(self, method: str, request, timeout: float = 60.0):
        """One call of the mesh's control API; a failure becomes a RecordsSourceError that says what to do."""
        import grpc

        with self.mesh.control() as control:
            try:
                return getattr(control, method)(request, timeout=timeout)
            except grpc.RpcError as exc:
                raise self.failed(exc) from None

    def stream(self, method: str, request, timeout: float = 3600.0) -> Iterator:
        """The messages of one server-streaming call of the control API, as they come."""
        import grpc

        with self.mesh.control() as control:
            try:
                yield from getattr(control, method)(request, timeout=timeout)
            except grpc.RpcError as exc:
                raise self.failed(exc) from None

    def failed(self, exc) -> RecordsSourceError:
        """EXC as a message: one line naming both ways when nothing answers, else the mesh's reason."""
        import grpc

        details = (exc.details() or "").lower()
        if exc.code() == grpc.StatusCode.UNAVAILABLE and any(sign in details for sign in NOTHING_LISTENS):
            return NoRecordsSource(
                f"no mesh answers at {self.mesh.address} and no {STORE_OPTION} was given: start the mesh "
                "(`meshserve up DIR`) or give the address it listens on (--address HOST:PORT), or read its records "
                f"store directly ({STORE_OPTION} FOLDER, sqlite:///PATH or postgresql://...)")
        return RecordsSourceError(f"{self.mesh.failure(exc)} (or read a store without the mesh: {STORE_OPTION} "
                                  "FOLDER, sqlite:///PATH or postgresql://...)")


def given(**fields: Any) -> dict[str, Any]:
    """FIELDS without those that are None: a message's optional fields left unset."""
    return {name: value for name, value in fields.items() if value is not None}
