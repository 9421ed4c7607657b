"""The models folder as a running mesh sees it: where each package is, and what is in it now.

`meshserve up DIR` reads DIR once with `discover_packages`; while it runs, the launcher's
package watcher (meshserve/launcher/package_watcher.py) and the control API's Deploy (which
waits for a package just copied there) look again with these functions. A location is a
package directory (one holding model.yaml) or a bundle file, found as `discover_packages`
finds them (hidden folders aside: imports stage there); its fingerprint changes whenever a
file in it is written, added or removed.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from meshserve.core.bundle import SUFFIX, unpack_bundle
from meshserve.core.model_package import MANIFEST_NAME, ModelPackage, load_package

Fingerprint = tuple  # of (relative path, size, mtime_ns) per file; a bundle: its own size and mtime
SKIPPED_DIRS = {"node_modules", ".meshserve", "__pycache__"}


def package_locations(root: str | Path) -> dict[Path, Fingerprint]:
    """Every package directory and bundle under ROOT with its fingerprint (links followed)."""
    root = Path(root).resolve()
    found: dict[Path, Fingerprint] = {}
    packages: list[Path] = []
    for directory, dirs, files in os.walk(root, followlinks=True):
        # Hidden folders are where imports and copies are staged before they are renamed into place.
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        here = Path(directory)
        if MANIFEST_NAME in files:
            packages.append(here)
        for name in files:
            if name.endswith(SUFFIX):
                found[here / name] = _stat(here / name)
    for package in packages:
        found[package] = _fingerprint(package)
    return found


def _stat(path: Path) -> tuple:
    try:
        info = path.stat()
    except OSError:  # removed while we looked
        return ()
    return (info.st_size, info.st_mtime_ns)


def _fingerprint(directory: Path) -> Fingerprint:
    entries = []
    for inner, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(inner) / name
            entries.append((str(path.relative_to(directory)), *_stat(path)))
    return tuple(sorted(entries))


def load_location(location: Path) -> ModelPackage:
    """The package at LOCATION (a bundle is checked and unpacked first); raises ManifestError."""
    if location.name.endswith(SUFFIX):
        return load_package(unpack_bundle(location))
    return load_package(location)


def named_in(location: Path) -> tuple[str | None, str | None]:
    """(name, version) as a package directory's model.yaml gives them, without loading it."""
    try:
        raw = yaml.safe_load((location / MANIFEST_NAME).read_text())
    except (OSError, yaml.YAMLError):
        return None, None
    if not isinstance(raw, dict):
        return None, None
    name, version = raw.get("name"), raw.get("version")
    return (str(name) if name is not None else None), (str(version) if version is not None else None)


def holds(location: Path, model: str, version: str) -> bool:
    """Whether LOCATION names MODEL at VERSION: its model.yaml, or a bundle's NAME-VERSION-<sha256> name."""
    if location.name.endswith(SUFFIX):
        digest = location.name[: -len(SUFFIX)].removeprefix(f"{model}-{version}-")
        return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
    return named_in(location) == (model, version)


def find_in_folder(root: str | Path, model: str, version: str) -> Path | None:
    """Where the models folder holds a package naming MODEL and VERSION, if anywhere."""
    if not root or not Path(root).is_dir():
        return None
    return next((location for location in package_locations(root) if holds(location, model, version)), None)
