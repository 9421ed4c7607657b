"""Bundles: a model package as one content-addressed file, `NAME-VERSION-<sha256>.msbundle`.

A bundle is a gzipped tar written deterministically (entries in path order, fixed times,
owners and modes, no gzip time stamp), so the same package always gives the same bytes and
one changed byte anywhere gives another digest. The digest is the sha256 of the whole file
and is part of its name; it is checked every time a bundle is opened, and a bundle whose
bytes no longer match its name is refused, naming both digests.

Opening a bundle unpacks it once into a cache folder named by its digest, with a marker
(`.meshserve/bundle.json`) that makes the bundle's digest the package's digest: the one
every prediction record and span carries.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path

from meshserve.core.errors import ManifestError

SUFFIX = ".msbundle"
MARKER = Path(".meshserve") / "bundle.json"
# Never packed: caches and meshserve's own working files inside a package.
SKIPPED_PARTS = {"__pycache__", ".meshserve", ".git"}
_NAME = re.compile(r"^(?P<stem>.+)-(?P<digest>[0-9a-f]{64})" + re.escape(SUFFIX) + "$")


class BundleCorrupted(ManifestError):
    """A bundle whose bytes do not match the digest in its name."""

    def __init__(self, path: Path, expected: str, actual: str):
        self.expected, self.actual = expected, actual
        super().__init__(str(path), "(digest)", f"the bundle is corrupted: expected sha256 {expected}, "
                         f"actual {actual}", "package the model again with `meshserve package DIR -o OUTDIR`, "
                         "or copy the bundle again from where it was made")


def is_bundle(path: Path) -> bool:
    return path.is_file() and path.name.endswith(SUFFIX)


def packed_files(directory: Path) -> list[Path]:
    """The files a bundle of DIRECTORY holds, in the order they are written."""
    found = []
    for path in directory.rglob("*"):
        relative = path.relative_to(directory)
        if SKIPPED_PARTS & set(relative.parts) or path.suffix == ".pyc" or not path.is_file():
            continue
        found.append(relative)
    return sorted(found, key=lambda p: p.as_posix())


def write_bundle(directory: Path, name: str, version: str, outdir: Path) -> Path:
    """Pack DIRECTORY into OUTDIR/NAME-VERSION-<sha256>.msbundle; returns its path."""
    outdir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for relative in packed_files(directory):
                source = directory / relative
                data = source.read_bytes()
                info = tarfile.TarInfo(relative.as_posix())
                info.size = len(data)
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o755 if os.stat(source).st_mode & stat.S_IXUSR else 0o644
                tar.addfile(info, io.BytesIO(data))
    content = buffer.getvalue()
    digest = hashlib.sha256(content).hexdigest()
    target = outdir / f"{name}-{version}-{digest}{SUFFIX}"
    temporary = outdir / f".{target.name}.tmp"
    temporary.write_bytes(content)
    os.replace(temporary, target)
    return target


def named_digest(path: Path) -> str:
    match = _NAME.match(path.name)
    if not match:
        raise ManifestError(str(path), "(file name)", "a bundle is named NAME-VERSION-<sha256>.msbundle",
                            "keep the name `meshserve package` gave it: the digest in it is how the bundle is checked")
    return match.group("digest")


def verify_bundle(path: Path) -> str:
    """The bundle's digest, once its bytes are checked against the one in its name."""
    expected = named_digest(path)
    with open(path, "rb") as f:
        actual = hashlib.file_digest(f, "sha256").hexdigest()
    if actual != expected:
        raise BundleCorrupted(path, expected, actual)
    return actual


def default_cache() -> Path:
    from meshserve.core.settings import get_settings

    configured = get_settings().bundle_cache
    return Path(configured) if configured else Path.home() / ".cache" / "meshserve" / "bundles"


def unpack_bundle(path: str | Path, cache: Path | None = None) -> Path:
    """Check the bundle and return the folder it is unpacked in (unpacked once per digest)."""
    path = Path(path).resolve()
    digest = verify_bundle(path)
    cache = cache or default_cache()
    target = cache / digest
    if (target / MARKER).is_file():
        _mark(target, digest, path)  # the same bytes, perhaps found at another path now
        return target
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=cache))
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            tar.extractall(staging, filter="data")  # refuses absolute paths, links out, devices
        _mark(staging, digest, path)
        try:
            os.rename(staging, target)
        except OSError:  # another process unpacked the same bundle first: use theirs
            shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, OSError, EOFError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ManifestError(str(path), "(file)", f"cannot be unpacked: {exc}",
                            "package the model again with `meshserve package DIR -o OUTDIR`") from exc
    return target


def _mark(directory: Path, digest: str, bundle: Path) -> None:
    marker = directory / MARKER
    marker.parent.mkdir(exist_ok=True)
    temporary = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"digest": digest, "bundle": str(bundle)}))
    os.replace(temporary, marker)


def bundle_of(directory: Path) -> dict | None:
    """{"digest", "bundle"} for a folder unpacked from a bundle, else None."""
    marker = directory / MARKER
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
