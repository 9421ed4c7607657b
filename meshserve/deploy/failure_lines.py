"""A package's failure in a fresh adapter, as the one line a user acts on: file, field and fix.

Runtimes say what is wrong with a package as a ManifestError (`model.yaml: field 'r.packages':
... Fix: ...`): at load, as the adapter's last line; at predict, inside the status message of
every request (an R error whose cause is a missing package or a misnamed feature). `meshserve
check` and the validation gate find that line in what the adapter said and put it on the path
the user knows (the bundle, not the cache folder it was unpacked into). Anything else is kept
as it was said, on one line.
"""

from __future__ import annotations

import re

from meshserve.core.model_package import ModelPackage

# The path ends at model.yaml; the rest of the line is the ManifestError's own text.
_MANIFEST_LINE = re.compile(r"(?:^|[\s(])(?P<path>\S*model\.yaml): field '(?P<field>[^']+)': (?P<rest>.+?\. Fix: .+)$")


def shown_manifest(package: ModelPackage) -> str:
    if package.bundle is not None:
        return f"{package.bundle.name} (unpacked)/model.yaml"
    return str(package.manifest_path)


def manifest_line(package: ModelPackage, said: str) -> str | None:
    """The ManifestError line inside SAID, on PACKAGE's own model.yaml; None when there is none."""
    match = _MANIFEST_LINE.search(" ".join(said.split()))
    if match is None:
        return None
    return f"{shown_manifest(package)}: field '{match['field']}': {match['rest']}"


def without_manifest_line(said: str) -> str:
    """SAID on one line, up to the ManifestError line it holds (printed on its own)."""
    said = " ".join(said.split())
    match = _MANIFEST_LINE.search(said)
    return said if match is None else said[:match.start()].rstrip(" ;(")


def one_line(package: ModelPackage, said: str) -> str:
    """SAID as the line to print: its ManifestError line when it holds one, else SAID on one line."""
    line = manifest_line(package, said)
    if line is not None:
        return line
    said = " ".join(said.split())
    if package.bundle is not None:  # name the file the user knows, not the cache folder
        said = said.replace(str(package.directory), f"{package.bundle.name} (unpacked)")
    return said
