"""Build a model package's Python environment once, with uv, and reuse it from the cache.

Each environment lives in `MESHSERVE_ENVS_DIR/<digest>` (digest: environment_spec.py). It is built
in a temporary folder beside it and renamed into place only when complete, so the cache never holds
half an environment, and a cached one is used as it is: no resolver, no network. Steps are shown
one line each (uv's own lines prefixed `uv:`). A failed build raises EnvironmentBuildError with one
line naming the requirement and uv's reason.
"""

from __future__ import annotations

import asyncio
import datetime
import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from meshserve.core.settings import get_settings
from meshserve.core.model_package import ModelPackage
from meshserve.environments.environment_spec import EnvironmentSpec, spec_for
from meshserve.environments.requirements import requirement_name

MARKER = "meshserve-environment.json"  # written last: an environment without it is not one
_locks: dict[str, asyncio.Lock] = {}


class EnvironmentBuildError(RuntimeError):
    """A package's environment could not be built; the message says which requirement and why."""


def envs_dir() -> Path:
    configured = get_settings().envs_dir
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "meshserve" / "envs"


def environment_path(spec: EnvironmentSpec) -> Path:
    return envs_dir() / spec.digest[:16]


def interpreter_of(environment: Path) -> Path:
    return environment / "bin" / "python"


def is_built(environment: Path) -> bool:
    return (environment / MARKER).is_file() and interpreter_of(environment).exists()


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise EnvironmentBuildError("uv is not installed, and it builds models' Python environments: "
                                "run `pip install uv` in meshserve's environment (scripts/setup.sh does)")


async def package_interpreter(package: ModelPackage, log: Callable[[str], None] = print) -> str:
    """The Python a package's adapter runs with: its own environment's when model.yaml records the
    model's requirements (built on first use, then cached), else meshserve's own."""
    spec = spec_for(package)
    if spec is None:
        return sys.executable
    return str(await ensure_environment(spec, log))


async def ensure_environment(spec: EnvironmentSpec, log: Callable[[str], None] = print) -> Path:
    """The interpreter of SPEC's environment, built first if the cache does not hold it yet."""
    target = environment_path(spec)
    if is_built(target):
        log(f"meshserve: {spec.label} runs in its own Python environment {target} (cached)")
        return interpreter_of(target)
    async with _locks.setdefault(spec.digest, asyncio.Lock()):  # replicas of one package build it once
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.parent / f".{target.name}.lock", "w") as lock:
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)  # and so do other meshes on this machine
            if not is_built(target):
                await _build(spec, target, log)
            else:
                log(f"meshserve: {spec.label} runs in its own Python environment {target} (cached)")
    return interpreter_of(target)


async def _build(spec: EnvironmentSpec, target: Path, log: Callable[[str], None]) -> None:
    started = time.monotonic()
    partial = target.with_name(f".building-{target.name}-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    if target.exists():  # an interrupted or foreign folder without the marker: not ours to trust
        shutil.rmtree(target)
    uv = uv_binary()
    log(f"meshserve: building the Python environment of {spec.label} (Python {spec.python}, "
        f"{len(spec.requirements)} pinned requirements) in {target}")
    try:
        python = str(interpreter_of(partial))
        await _step(spec, log, "1/4 virtual environment", [uv, "venv", "--relocatable", "-p", spec.python, str(partial)])
        await _step(spec, log, "2/4 the model's requirements with the adapter's",
                    [uv, "pip", "install", "-p", python, *spec.requirements, *spec.resolved_adapter])
        await _step(spec, log, "3/4 meshserve and tritonclient (without their dependencies)",
                    [uv, "pip", "install", "-p", python, "--no-deps", *spec.unresolved_adapter, *spec.meshserve])
        await _step(spec, log, "4/4 check that the adapter imports",
                    [python, "-c", "import meshserve.adapters.server, meshserve.adapters.python.runtime"])
        (partial / MARKER).write_text(json.dumps({
            "digest": spec.digest, "package": spec.label, "python": spec.python,
            "requirements": list(spec.requirements), "adapter": list(spec.adapter), "meshserve": list(spec.meshserve),
            "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}, indent=2))
        os.rename(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    log(f"meshserve: built the Python environment of {spec.label} in {time.monotonic() - started:.1f} s")


async def _step(spec: EnvironmentSpec, log: Callable[[str], None], what: str, argv: list[str]) -> None:
    log(f"meshserve: [{spec.label}] {what}")
    env = dict(os.environ)
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")  # a missing Python is reported, not fetched behind one's back
    env.pop("VIRTUAL_ENV", None)
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT, env=env)
    lines = []
    try:
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line.strip() and not line.startswith("Activate with:"):  # the temporary folder is no place to go
                lines.append(line)
                log(f"meshserve: [{spec.label}]   {Path(argv[0]).name}: {line.strip()}")
        code = await process.wait()
    except BaseException:  # the mesh is stopping: stop uv before its half-made folder is removed
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if code != 0:
        raise EnvironmentBuildError(failure_message(spec, what, lines))


def _name(requirement: str) -> str:
    try:
        return requirement_name(requirement)
    except ValueError:  # a hand-written line that is not a requirement: it names nothing
        return ""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def failure_message(spec: EnvironmentSpec, what: str, lines: list[str]) -> str:
    """One line: the package, the step, uv's reason, and which side each named requirement comes from."""
    clashes = spec.direct_clashes()
    if clashes:  # uv's account of a clash this plain only buries it
        return clash_message(spec, what, clashes)
    text = [_ANSI.sub("", line).strip() for line in lines]
    reason_at = next((i for i, line in enumerate(text) if line.startswith(("╰─▶", "error:", "×", "Caused by"))),
                     None)
    said = text[reason_at:] if reason_at is not None else text[-3:]
    parts = [re.sub(r"^(error:|cause:|Caused by:|╰─▶|×)\s*", "", line.strip()) for line in said]
    reason = re.sub(r"\s+", " ", ": ".join(p.rstrip(".:") for p in parts if p)).strip()
    mentioned = {word.lower() for word in re.findall(r"[A-Za-z0-9][A-Za-z0-9._\-]*", reason)}
    model = [r for r in spec.requirements if _name(r) in mentioned]
    adapter = [r for r in spec.resolved_adapter if _name(r) in mentioned]
    missing = re.search(r"no version of|not found in the package registry|no versions of", reason)
    if missing:  # the index does not have it: nothing to do with the adapter's ranges
        adapter = []
    sides = []
    if model:
        sides.append(f"the model pins {', '.join(model)} ({spec.manifest_path}: environment.python.requirements)")
    if adapter:
        sides.append(f"meshserve's adapter needs {', '.join(adapter)} (adapters/python/adapter-requirements.txt)")
    where = f"; {'; '.join(sides)}" if sides else ""
    if "No interpreter found" in reason or "No Python" in reason:
        fix = (f"install Python {spec.python} (e.g. apt-get install python{spec.python}) or set "
               "UV_PYTHON_DOWNLOADS=automatic to let uv fetch it")
    elif missing:
        fix = "correct the pin in model.yaml or the requirements file: check the name and that the index has that version"
    elif model or adapter:
        fix = ("pin versions the other side allows, in the training environment and then again with "
               "`meshserve package DIR --from-venv PATH` (or --requirements FILE)")
    else:
        fix = "check the requirement names and versions in model.yaml, and that the package index is reachable"
    return f"cannot build the Python environment of {spec.label} ({what}): {reason}{where}. Fix: {fix}"


def clash_message(spec: EnvironmentSpec, what: str, clashes: list[tuple[str, str, str]]) -> str:
    """One line for packages the model pins outside what the adapter allows: each with both sides, and the fix."""
    said = "; ".join(f"{name}: the model pins {pin} ({spec.manifest_path}: environment.python.requirements) and "
                     f"meshserve's adapter needs {wanted} (adapters/python/adapter-requirements.txt)"
                     for name, pin, wanted in clashes)
    allowed = ", ".join(wanted for _, _, wanted in clashes)
    return (f"cannot build the Python environment of {spec.label} ({what}): {said}. Fix: install {allowed} in the "
            "training environment (retrain if the model's pickle depends on it), then record it again with "
            "`meshserve package DIR --from-venv PATH` (or --requirements FILE)")


# What uv says when the requirements themselves cannot go together, and when it only could not look.
_UNRESOLVABLE = re.compile(r"No solution found|no versions? of|not found in the package registry")
_UNREACHABLE = re.compile(r"network connectivity is disabled|not found in the cache|Failed to fetch|"
                          r"error sending request|dns error|connection refused|could not connect", re.IGNORECASE)


async def check_resolves(spec: EnvironmentSpec, log: Callable[[str], None] = print) -> str | None:
    """Resolve SPEC's requirements with the adapter's, installing nothing, so `meshserve package`
    refuses a clash before recording it rather than `meshserve up` after.

    Raises EnvironmentBuildError when they cannot go together; returns a warning (None when
    resolved) when uv could not tell, without an index say, which `meshserve up` meets again."""
    clashes = spec.direct_clashes()
    if clashes:
        raise EnvironmentBuildError(clash_message(spec, "resolving the model's requirements with the adapter's",
                                                  clashes))
    with tempfile.TemporaryDirectory(prefix="meshserve-resolve-") as folder:
        listed = Path(folder) / "requirements.in"
        listed.write_text("\n".join((*spec.requirements, *spec.resolved_adapter)) + "\n")
        try:
            await _step(spec, log, "resolving the model's requirements with the adapter's",
                        [uv_binary(), "pip", "compile", "--quiet", "--no-header", "--python-version", spec.python,
                         "-o", str(Path(folder) / "resolved.txt"), str(listed)])
        except EnvironmentBuildError as exc:
            if _UNRESOLVABLE.search(str(exc)) and not _UNREACHABLE.search(str(exc)):
                raise
            return f"not checked that the requirements resolve with the adapter's ({exc})"
    return None


# Run in a package's own environment by check_in_own_environment: the model loaded where it will be served.
_CHECK_THERE = r"""
import json, sys
from meshserve.core.errors import ManifestError
from meshserve.core.model_package import load_package
try:
    package = load_package(sys.argv[1])
    package.options.check_model(package)
except ManifestError as exc:
    print(json.dumps([exc.path, exc.field, exc.problem, exc.fix]))
    sys.exit(2)
"""


def check_in_own_environment(package) -> bool:
    """For `meshserve check`: load a package that has its own environment there, not here.

    True when that was done (or cannot be yet: its environment is built by `meshserve up`), False
    when the package runs in this environment and the caller should check it here."""
    import subprocess
    import sys

    from meshserve.core.errors import ManifestError
    from meshserve.environments.environment_spec import spec_for

    spec = spec_for(package)
    if spec is None:
        return False
    target = environment_path(spec)
    if Path(sys.prefix).resolve() == target.resolve():
        return False
    if not is_built(target):
        return True  # nothing to load it with yet; `meshserve up` builds the environment, then loads it
    result = subprocess.run([str(interpreter_of(target)), "-c", _CHECK_THERE, str(package.directory)],
                            capture_output=True, text=True, timeout=300)
    if result.returncode == 2 and result.stdout.strip():
        raise ManifestError(*json.loads(result.stdout.strip().splitlines()[-1]))
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise EnvironmentBuildError(f"checking {spec.label} in its environment {target} failed: {last}")
    return True
