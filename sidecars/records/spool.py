"""The spool: append-only files where a process puts each record before it answers.

A record is one frame: 4-byte length, 4-byte CRC-32 (both little-endian), then the record as
UTF-8 JSON: its small fields, a NUL byte (which JSON text never holds), and its body (inputs,
outputs, timings) as the JSON the store keeps. The recorder reads the small fields and stores
the body as it is, so a record of a large batch is never decoded and encoded again. (A frame
with no NUL is a whole record, as frames were written before.) The writer appends a frame
with a single `write` on an O_APPEND descriptor, so once `append` returns the record is in
the kernel's hands and survives SIGKILL of the process (`records_fsync` adds a flush to disk
for machine crashes). A process killed in the middle of a write leaves at most one torn frame
at the end of its file, for a request it never answered; readers stop at it.

Files are named `LABEL.PID.SEQ.spool` in one folder per mesh. A writer starts a new file past
`records_spool_file_bytes`; the recorder (`recorder.py`) reads each file from the offset it
last committed and deletes it once it is consumed and finished (a newer file of the same
writer exists, or the writer is gone).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import orjson

log = logging.getLogger("meshserve.records")

_HEADER = struct.Struct("<II")
SUFFIX = ".spool"
_NAME = re.compile(r"^(?P<label>.+)\.(?P<pid>\d+)\.(?P<seq>\d{6})\.spool$")


class SpoolFull(RuntimeError):
    """The process has spooled as much as it may while the recorder does not keep up."""


class SpoolFault(OSError):
    """The disk refused a record: REASON says why in one word (a metric label)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def fault_reason(exc: BaseException) -> str:
    """A short, stable name for why a record could not be written, for metrics and the log."""
    if isinstance(exc, SpoolFault):
        return exc.reason
    if isinstance(exc, SpoolFull):
        return "spool_full"
    if isinstance(exc, OSError):
        return {errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full", errno.EROFS: "read_only",
                errno.EACCES: "not_permitted", errno.EPERM: "not_permitted",
                errno.ENOENT: "folder_missing"}.get(exc.errno or 0, "write_error")
    return "unserializable"


# What a record's body holds, in the order the store writes it (store.py's `body` column).
BODY_FIELDS = ("inputs", "outputs", "timings")
_BODY_MARK = b"\0"
# Disk space a writer waits for before it calls a full disk usable again (or twice the record it
# could not write, if larger): a record barely fitting would only fail again at the next one.
FREE_BYTES_TO_RESUME = 64 * 1024
# How often a writer whose disk refused it tries again, at most (and so how soon it resumes).
RETRY_EVERY_S = 0.2


def frame(record: dict[str, Any]) -> bytes:
    if any(field in record for field in BODY_FIELDS):
        fields = {k: v for k, v in record.items() if k not in BODY_FIELDS}
        body = {field: record.get(field) for field in BODY_FIELDS}
        payload = b"".join((orjson.dumps(fields, option=orjson.OPT_SERIALIZE_NUMPY), _BODY_MARK,
                            orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)))
    else:
        payload = orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY)
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _record(data: bytes, start: int, end: int) -> dict[str, Any]:
    """The record framed in DATA[START:END]: its small fields, with its body as JSON text under "body"."""
    cut = data.find(_BODY_MARK, start, end)  # the small fields come first: found at once
    if cut < 0:
        return orjson.loads(memoryview(data)[start:end])
    record = orjson.loads(memoryview(data)[start:cut])
    record["body"] = data[cut + 1:end].decode()
    return record


class SpoolWriter:
    """Appends records to this process's spool files, and survives every fault of the disk.

    The writer holds at most one descriptor, its current file's, and forgets it the moment it
    closes it: a number the kernel may hand to a client's socket next is never written to. A
    file that vanished or was covered (its folder deleted, a mount over the folder) is noticed
    before the next write, since records written there would reach no recorder. While the disk
    refuses (full, read-only, no permission, folder gone) `append` raises `SpoolFault` at once
    and tries again at most every RETRY_EVERY_S, so recording resumes by itself within a
    second of the fault clearing. After a write fault the writer moves to a new file, so the
    recorder can consume and delete the old one and a freed disk stays free.
    """

    def __init__(self, folder: str | Path, label: str, file_bytes: int, max_bytes: int, fsync: bool = False):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.label = re.sub(r"[^A-Za-z0-9_.\-]", "_", label)
        self.file_bytes = file_bytes
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.pid = os.getpid()
        self._seq = 0
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file _fd writes to
        self._size = 0
        self._spooled_elsewhere = 0  # bytes still in this writer's older files, as last seen
        self._checked_at = 0.0
        self.fault: SpoolFault | None = None  # the disk's last refusal, until a record is written again
        self._retry_at = 0.0
        self._refused_bytes = 0  # size of the last record the disk refused
        self.records = 0
        try:
            self._open_next()
        except OSError as exc:  # serving starts anyway; records are counted lost until the disk takes them
            self._refused(exc)

    @property
    def path(self) -> Path:
        return self.folder / f"{self.label}.{self.pid}.{self._seq:06d}{SUFFIX}"

    def _close(self) -> None:
        fd, self._fd, self._identity = self._fd, None, None
        if fd is not None:
            self._spooled_elsewhere += self._size  # until the next look at the folder says otherwise
            self._size = 0
            os.close(fd)

    def _open_next(self) -> None:
        self._close()
        self._seq += 1
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # a deleted folder comes back
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        status = os.fstat(fd)
        self._fd, self._identity, self._size = fd, (status.st_dev, status.st_ino), status.st_size

    def _still_there(self) -> bool:
        """Whether the current file is still the one a recorder finds under its name."""
        try:
            status = os.stat(self.path)
        except OSError:
            return False
        return (status.st_dev, status.st_ino) == self._identity

    def _refused(self, exc: OSError) -> SpoolFault:
        reason = fault_reason(exc)
        self.fault = exc if isinstance(exc, SpoolFault) else SpoolFault(reason, f"{self.folder}: {exc}")
        self._retry_at = time.monotonic() + RETRY_EVERY_S
        return self.fault

    def _ready_to_write(self) -> None:
        """Make sure the writer holds a current, reachable file; raise SpoolFault while it cannot."""
        if self.fault is not None and time.monotonic() < self._retry_at:
            raise self.fault
        if self.fault is not None and self.fault.reason == "disk_full" and not self._space_to_resume():
            raise self._refused(self.fault)
        if self._fd is not None and self._still_there():
            return
        try:
            self._open_next()
        except OSError as exc:
            self._close()
            raise self._refused(exc) from exc

    def _space_to_resume(self) -> bool:
        try:
            disk = os.statvfs(self.folder)
        except OSError:
            return True  # the folder is gone: the open below says what is wrong now
        return disk.f_bavail * disk.f_frsize >= max(FREE_BYTES_TO_RESUME, 2 * self._refused_bytes)

    def writable(self) -> bool:
        """Whether a record could be written now; tries to recover when the disk refused before."""
        if self.fault is None:
            return True
        try:
            self._ready_to_write()
        except SpoolFault:
            return False
        return True

    def spooled_bytes(self) -> int:
        """Bytes of this writer's records that the recorder has not yet taken away."""
        now = time.monotonic()
        if now - self._checked_at > 1.0:
            self._checked_at = now
            prefix = f"{self.label}.{self.pid}."
            current = self.path.name if self._fd is not None else None
            try:
                self._spooled_elsewhere = sum(entry.stat().st_size for entry in os.scandir(self.folder)
                                              if entry.name.startswith(prefix) and entry.name != current)
            except OSError:
                self._spooled_elsewhere = 0
        return self._spooled_elsewhere + self._size

    def append(self, record: dict[str, Any]) -> None:
        """Put RECORD on disk; raise SpoolFull past the bound, SpoolFault when the disk refuses."""
        data = frame(record)
        if self.spooled_bytes() + len(data) > self.max_bytes:
            self._checked_at = 0.0  # look again next time: the recorder may have caught up
            raise SpoolFull(f"{self.spooled_bytes()} bytes spooled in {self.folder}, the limit of "
                            "MESHSERVE_RECORDS_SPOOL_MAX_BYTES; is the recorder running?")
        self._ready_to_write()
        if self._size and self._size + len(data) > self.file_bytes:
            try:
                self._open_next()
            except OSError as exc:
                self._close()
                raise self._refused(exc) from exc
        self._write(data)
        self.fault = None
        self.records += 1

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            self._refused_bytes = len(data)
            # Never leave half a frame behind; then leave this file to the recorder (which deletes
            # it once consumed) rather than growing it again when space comes back.
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            if self._size:
                self._close()
            raise self._refused(exc) from exc
        self._size += written

    def close(self) -> None:
        self._close()


@dataclass(frozen=True)
class SpoolFile:
    path: Path
    label: str
    pid: int
    seq: int

    @classmethod
    def parse(cls, path: Path) -> "SpoolFile | None":
        match = _NAME.match(path.name)
        if not match:
            return None
        return cls(path, match["label"], int(match["pid"]), int(match["seq"]))

    @property
    def writer(self) -> tuple[str, int]:
        return self.label, self.pid


def spool_files(folder: str | Path) -> list[SpoolFile]:
    found = [SpoolFile.parse(p) for p in Path(folder).glob(f"*{SUFFIX}")] if Path(folder).is_dir() else []
    return sorted((f for f in found if f is not None), key=lambda f: (f.label, f.pid, f.seq))


def read_frames(path: Path, offset: int, max_bytes: int = 64 * 1024 * 1024) -> Iterator[tuple[int, dict]]:
    """Complete frames from OFFSET: (offset after the frame, record). Stops at a torn or partly
    written frame, which a live writer may still be finishing."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(max_bytes)
    position = 0
    while position + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, position)
        start, end = position + _HEADER.size, position + _HEADER.size + length
        if end > len(data):
            if position == 0 and length + _HEADER.size > max_bytes:
                # One frame larger than the read window: read exactly it.
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read(_HEADER.size + length)
                if len(data) == _HEADER.size + length and zlib.crc32(memoryview(data)[_HEADER.size:]) == crc:
                    yield offset + len(data), _record(data, _HEADER.size, len(data))
            return
        if zlib.crc32(memoryview(data)[start:end]) != crc:
            log.warning("spool %s: torn frame at byte %d (its writer died while writing it); skipping the rest",
                        path, offset + position)
            return
        position = end
        yield offset + position, _record(data, start, end)


def writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie holds its pid but writes nothing more
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
