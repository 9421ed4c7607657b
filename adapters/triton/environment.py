"""The Triton environment of a package: what `meshserve package` records under `environment.triton`,
and the check at load that the model's files and the Triton serving them still match it.

(a) A model repository in the package: the version of the `nvidia-pytriton` wheel that carries the
    tritonserver binary (from the wheel's metadata: the binary has no `--version`, and starting it
    only to ask would make packaging slow and fragile) and the sha256 of config.pbtxt and of every
    file in the model's folder (Python byte-code caches excluded: Triton's Python backend writes them).
(b) An external Triton: its address, the model name and version, and Triton's own version string
    from its server metadata when it answers within a couple of seconds (no digests: the files are
    not ours).

At load a difference is a warning naming the item and both values, or a refusal (ManifestError)
when `environment.strict` is true, as for the Java and R runtimes. Nothing here starts Triton or
imports tritonclient at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from meshserve.adapters.triton.triton_env import WHEEL, wheel_version

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage, sha256_of

_SKIPPED_DIRS = {"__pycache__"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_FIX_FILES = "restore the files the model was packaged with, or re-run `meshserve package` if the change is intended"
_FIX_OTHER = ("serve the model with the Triton and model version model.yaml records, or re-run `meshserve package` "
              "if the change is intended")


def model_files(model_dir: Path) -> dict[str, str]:
    """sha256 of every file in a Triton model folder (config.pbtxt, version folders), by relative path."""
    found = {}
    for folder, dirs, files in os.walk(model_dir):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        for name in sorted(files):
            if name.endswith(_SKIPPED_SUFFIXES):
                continue
            path = Path(folder) / name
            found[path.relative_to(model_dir).as_posix()] = sha256_of(path)
    return dict(sorted(found.items()))


def external_server_version(address: str, timeout_s: float = 2.0) -> str | None:
    """Triton's version string from a running server's metadata, or None if it does not answer."""
    try:
        import tritonclient.grpc as triton_grpc

        client = triton_grpc.InferenceServerClient(url=address)
        try:
            return str(client.get_server_metadata(as_json=True, client_timeout=timeout_s).get("version") or "") or None
        finally:
            client.close()
    except Exception:  # unreachable, or tritonclient missing: the version is simply not known
        return None


def _model_dir(package: ModelPackage) -> Path:
    options = package.options
    return package.path(options.model_repository) / options.model_name


def capture_environment(package: ModelPackage) -> dict[str, Any]:
    """What `meshserve package` records under `environment.triton`."""
    options = package.options
    if options.model_repository is not None:
        return {"triton": {
            "source": "model_repository",
            "wheel": {"name": WHEEL, "version": wheel_version() or "not installed"},
            "model_repository": options.model_repository,
            "model_name": options.model_name,
            "model_version": options.model_version or "latest",
            "files": model_files(_model_dir(package)),
        }}
    return {"triton": {
        "source": "server",
        "server": options.server,
        "version": external_server_version(options.server) or "unknown",
        "model_name": options.model_name,
        "model_version": options.model_version or "latest",
    }}


def check_environment(package: ModelPackage, server_version: str | None = None) -> list[str]:
    """Differences between the recorded Triton environment and the one at hand, as warning messages.

    `server_version` is the running Triton's version, for (b). Raises ManifestError naming the first
    differing field (and every difference) when the recorded environment is strict."""
    environment = package.manifest.environment or {}
    recorded = environment.get("triton")
    if not recorded:
        return []
    options = package.options
    differences: list[tuple[str, str]] = []

    def compare(field: str, what: str, want: Any, have: Any) -> None:
        if want is not None and str(want) != str(have):
            differences.append((f"environment.triton.{field}", f"{what}: recorded {want}, now {have}"))

    compare("model_name", "Triton model name", recorded.get("model_name"), options.model_name)
    compare("model_version", "Triton model version", recorded.get("model_version"), options.model_version or "latest")
    if options.model_repository is not None:
        if recorded.get("source") != "model_repository":
            differences.append(("environment.triton.source", "recorded for an external Triton "
                                f"({recorded.get('server')}), but model.yaml now names a model repository"))
        else:
            wheel = recorded.get("wheel") or {}
            compare("wheel.version", f"{WHEEL} (the tritonserver binary)", wheel.get("version"),
                    wheel_version() or "not installed")
            differences.extend(_file_differences(_model_dir(package), recorded.get("files") or {}))
    else:
        if recorded.get("source") != "server":
            differences.append(("environment.triton.source", "recorded for a model repository in the package, "
                                f"but model.yaml now names the external Triton at {options.server}"))
        else:
            compare("server", "Triton server address", recorded.get("server"), options.server)
            if server_version is not None and recorded.get("version") not in (None, "unknown"):
                compare("version", f"Triton version at {options.server}", recorded.get("version"), server_version)
    if differences and environment.get("strict"):
        raise ManifestError(
            str(package.manifest_path), differences[0][0],
            "the model's Triton environment differs from the one recorded by `meshserve package` (strict): "
            + "; ".join(message for _, message in differences),
            _FIX_FILES if differences[0][0].startswith("environment.triton.files.") else _FIX_OTHER)
    return [f"model {package.name}:{package.version}: {message}" for _, message in differences]


def _file_differences(model_dir: Path, recorded: dict[str, Any]) -> list[tuple[str, str]]:
    have = model_files(model_dir) if model_dir.is_dir() else {}
    differences = []
    for name, want in recorded.items():
        field = f"environment.triton.files.{name}"
        if name not in have:
            differences.append((field, f"{model_dir / name} is missing: model.yaml records sha256 {want}"))
        elif have[name] != str(want):
            differences.append((field, f"{model_dir / name} changed since the model was packaged: "
                                       f"model.yaml records sha256 {want}, the file has sha256 {have[name]}"))
    for name in sorted(set(have) - set(recorded)):
        differences.append((f"environment.triton.files.{name}",
                            f"{model_dir / name} was added since the model was packaged "
                            f"(sha256 {have[name]}, not recorded in model.yaml)"))
    return differences
