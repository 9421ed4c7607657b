"""The record observer: every inference a server sees goes to its spool before the answer leaves.

The adapter records everything it handles (primary, canary and shadow traffic, answered or
failed); the router records what it answers with an error, above all what it refuses itself
(bad input, unknown model, no adapter reachable). The store keeps one record per request and
slot (`record.slot_of`), preferring an answer over an error and the adapter's record over
the router's, so a request is never recorded twice.

When a record cannot be written (the spool is at its bound because the recorder is down, or
the disk refuses), the default is to serve anyway, count it (`losses.py`) and say so in the
log; in compliance mode (`records.on_failure: refuse` in meshserve.yaml) the request is
answered UNAVAILABLE instead of with a prediction nobody could audit, and the server reports
NOT_SERVING until the spool takes records again (`serving`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import grpc

from meshserve.core.errors import ManifestError, ModelUnavailable
from meshserve.core.model_package import ModelPackage
from meshserve.core.observers import InferenceEvent
from meshserve.core.settings import Settings, get_settings
from meshserve.sidecars.records.record import package_record, record_from_event
from meshserve.sidecars.records.losses import LossLedger
from meshserve.sidecars.records.spool import SpoolFull, SpoolWriter, fault_reason
from meshserve.spec.run_folder import RecordsFolder

log = logging.getLogger("meshserve.records")


class RecordObserver:
    before_answer = True  # the record is on disk before the client can see the answer

    def __init__(self, writer: SpoolWriter, packages: Callable[[str, str], ModelPackage | None],
                 settings: Settings, side: str):
        self.writer = writer
        self.packages = packages  # (model, version) -> its package, for digest and signature
        self.side = side
        self.limit = settings.records_max_tensor_bytes
        self.refuse = settings.records_on_failure == "refuse"
        key = settings.records_pii_key
        self._pii_key = key.get_secret_value().encode() if key is not None else None
        self.losses = LossLedger(side, writer.label)

    @property
    def failed(self) -> int:
        """Records this process could not write since it started."""
        return self.losses.total

    def observe(self, event: InferenceEvent) -> None:
        if self.side == "router" and event.code == grpc.StatusCode.OK:
            return  # the adapter that answered has recorded it
        try:
            package = self.packages(event.model, event.version)
            self.writer.append(record_from_event(event, package, self.limit, self._pii_key))
        except (SpoolFull, OSError, ValueError, TypeError) as exc:
            self.losses.lost(event.model, event.version, fault_reason(exc),
                             f"request {event.call.request_id}: {exc}")
            if self.refuse:
                raise ModelUnavailable("this mesh refuses to answer what it cannot record "
                                       f"(records.on_failure: refuse) and recording failed: {exc}") from exc
            return
        self.losses.resumed()
        if self.losses.unreported:
            self._report_losses()

    def _report_losses(self) -> None:
        for entry in self.losses.entries(self.writer.pid):
            try:
                self.writer.append(entry)
            except (SpoolFull, OSError):
                return  # kept for the next record that gets through
            self.losses.taken(entry)

    def serving(self) -> bool:
        """Whether this server may take requests as far as records go: false in compliance mode
        while the spool refuses records (so health says NOT_SERVING); also logs loss totals."""
        self.losses.tick()
        if not self.refuse:
            return True
        return self.writer.writable()

    def record_package(self, package: ModelPackage) -> None:
        self.writer.append(package_record(package))

    def close(self) -> None:
        self.writer.close()


def spool_folder(settings: Settings) -> Path | None:
    return RecordsFolder(Path(settings.records_dir)).spool if settings.records_dir else None


def check_pii_key(packages: list[ModelPackage], settings: Settings) -> None:
    """Refuse to serve a model with pii inputs when there is no key to hash them with."""
    if settings.records_pii_key is not None or not settings.records_dir:
        return
    for package in packages:
        pii = [s.name for s in package.manifest.signature.inputs if s.pii]
        if pii:
            raise ManifestError(str(package.manifest_path), f"signature.inputs ({', '.join(pii)}).pii",
                                "inputs marked pii are recorded as a keyed hash, and no key is set",
                                "export MESHSERVE_RECORDS_PII_KEY=<a secret of your own> before starting the mesh "
                                "(keep it in your secret store; meshserve never writes it down)")


def adapter_record_observer(package: ModelPackage, label: str, settings: Settings | None = None) -> RecordObserver | None:
    """The adapter's observer, or None when recording is off (no records_dir)."""
    settings = settings or get_settings()
    folder = spool_folder(settings)
    if folder is None:
        return None
    check_pii_key([package], settings)
    writer = SpoolWriter(folder, label, settings.records_spool_file_bytes, settings.records_spool_max_bytes,
                         fsync=settings.records_fsync)
    observer = RecordObserver(writer, lambda model, version: package, settings, side="adapter")
    observer.record_package(package)
    return observer


def router_record_observer(packages: Callable[[str, str], ModelPackage | None],
                           settings: Settings | None = None) -> RecordObserver | None:
    settings = settings or get_settings()
    folder = spool_folder(settings)
    if folder is None:
        return None
    writer = SpoolWriter(folder, "router", settings.records_spool_file_bytes, settings.records_spool_max_bytes,
                         fsync=settings.records_fsync)
    return RecordObserver(writer, packages, settings, side="router")
