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


# What a record's body holds, in the order the store writes it (store.py's `body` column).
BODY_FIELDS = ("inputs", "outputs", "timings")
_BODY_MARK = b"\0"


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
    def __init__(self, folder: str | Path, label: str, file_bytes: int, max_bytes: int, fsync: bool = False):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.label = re.sub(r"[^A-Za-z0-9_.\-]", "_", label)
        self.file_bytes = file_bytes
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.pid = os.getpid()
        self._seq = 0
        self._fd: int | None = None
        self._size = 0
        self._spooled_elsewhere = 0  # bytes still in this writer's older files, as last seen
        self._checked_at = 0.0
        self.records = 0
        self._open_next()

    @property
    def path(self) -> Path:
        return self.folder / f"{self.label}.{self.pid}.{self._seq:06d}{SUFFIX}"

    def _open_next(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._spooled_elsewhere += self._size  # until the next look at the folder says otherwise
        self._seq += 1
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size

    def spooled_bytes(self) -> int:
        """Bytes of this writer's records that the recorder has not yet taken away."""
        now = time.monotonic()
        if now - self._checked_at > 1.0:
            self._checked_at = now
            prefix = f"{self.label}.{self.pid}."
            self._spooled_elsewhere = sum(entry.stat().st_size for entry in os.scandir(self.folder)
                                          if entry.name.startswith(prefix) and entry.name != self.path.name)
        return self._spooled_elsewhere + self._size

    def append(self, record: dict[str, Any]) -> None:
        """Put RECORD on disk; raise SpoolFull past the bound, OSError when the disk refuses."""
        data = frame(record)
        if self.spooled_bytes() + len(data) > self.max_bytes:
            self._checked_at = 0.0  # look again next time: the recorder may have caught up
            raise SpoolFull(f"{self.spooled_bytes()} bytes spooled in {self.folder}, the limit of "
                            "MESHSERVE_RECORDS_SPOOL_MAX_BYTES; is the recorder running?")
        if self._size and self._size + len(data) > self.file_bytes:
            self._open_next()
        written = os.write(self._fd, data)
        if written != len(data):  # a short write on a full disk: never leave half a frame behind
            os.ftruncate(self._fd, self._size)
            raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
        if self.fsync:
            os.fsync(self._fd)
        self._size += written
        self.records += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


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
