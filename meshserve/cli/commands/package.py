"""`meshserve package DIR [--strict]`: record the environment a model package runs in.

The package's runtime captures it (R: R's version and every loaded package's version;
other runtimes without their own capture: the Python version and `pip freeze`), and the
result is written into model.yaml under `environment:`. The rest of model.yaml, comments
included, is kept as written. At load a runtime compares the recorded versions with the
running ones: it warns on a difference, or refuses to load when `environment.strict` is true.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import yaml

from meshserve.environments.capture import add_arguments as add_python_environment_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("package", help="record the environment of a model package in its model.yaml")
    parser.add_argument("package", help="model package directory (holds model.yaml)")
    parser.add_argument("--strict", action="store_true",
                        help="refuse to load the model later where recorded versions differ (default: warn)")
    add_python_environment_arguments(parser)
    parser.set_defaults(func=_package)


def _package(args) -> int:
    from meshserve.core.model_package import load_package
    from meshserve.environments.capture import environment_to_record

    package = load_package(args.package)
    environment = environment_to_record(package, args, capture_environment)
    environment["strict"] = bool(args.strict)
    environment["captured_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    write_environment(package.manifest_path, environment)
    print(f"recorded the environment of {package.name}:{package.version} in {package.manifest_path}"
          f"{' (strict)' if args.strict else ''}")
    for line in summary(environment):
        print(f"  {line}")
    return 0


def capture_environment(package) -> dict[str, Any]:
    """What the package's runtime records of its environment (Python's by default)."""
    from meshserve.adapters.runtimes import runtime_entry

    return dict(runtime_entry(package.manifest.runtime).runtime_class().capture_environment(package))


_TOP_LEVEL_LINE = re.compile(r"^\S")  # the next top-level key or comment ends the block


def write_environment(manifest_path: Path, environment: dict[str, Any]) -> None:
    """Replace (or append) the top-level `environment:` block, leaving every other line alone."""
    lines = manifest_path.read_text().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("environment:")), None)
    block = yaml.safe_dump({"environment": environment}, sort_keys=False, default_flow_style=False)
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(block)
    else:
        end = start + 1
        while end < len(lines) and not _TOP_LEVEL_LINE.match(lines[end]):
            end += 1
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1  # keep the blank lines that separate it from what follows
        lines[start:end] = [block]
    text = "".join(lines)
    yaml.safe_load(text)  # never leave a manifest that no longer parses
    tmp = manifest_path.with_suffix(".yaml.tmp")
    tmp.write_text(text)
    tmp.replace(manifest_path)


def summary(environment: dict[str, Any]) -> list[str]:
    lines = []
    if "r" in environment:
        r = environment["r"]
        lines.append(f"R {r.get('version')} with {len(r.get('packages', {}))} packages loaded")
    if "python" in environment:
        py = environment["python"]
        if "requirements" in py:
            lines.append(f"Python {py.get('version')} with {len(py['requirements'])} pinned requirements "
                         f"(from {py.get('source', 'the training environment')}; `meshserve up` builds its own environment)")
        else:
            lines.append(f"Python {py.get('version')} with {len(py.get('packages', []))} packages")
    if "java" in environment:
        java = environment["java"]
        lines.append(f"Java {java.get('version')} ({java.get('vm')}) with {len(java.get('jars', {}))} jar digests")
    if "triton" in environment:
        triton = environment["triton"]
        if triton.get("source") == "server":
            lines.append(f"Triton {triton.get('version')} at {triton.get('server')}: model {triton.get('model_name')} "
                         f"version {triton.get('model_version')}")
        else:
            wheel = triton.get("wheel") or {}
            lines.append(f"Triton from {wheel.get('name')} {wheel.get('version')}: model {triton.get('model_name')} "
                         f"with {len(triton.get('files') or {})} file digests")
    for key in sorted(set(environment) - {"r", "python", "java", "triton", "strict", "captured_at"}):
        lines.append(f"{key}: recorded")
    return lines
