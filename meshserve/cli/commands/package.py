"""`meshserve package DIR [-o OUTDIR]`: record what a model package needs and where it came from.

The package's runtime captures its environment (R: R's version and every loaded package's
version; other runtimes without their own capture: the Python version and `pip freeze`),
written into model.yaml under `environment:`. With `--training-data FILE` the data's sha256
and row count, and the code revision (`--code-revision`, else `git rev-parse HEAD` of DIR's
work tree, `-dirty` when it has changes), go under `provenance:`. Golden examples (rows
scored through the package's runtime in a fresh adapter) go into `golden.json`.

Without `-o`, DIR's model.yaml is updated in place (the rest of it, comments included, kept
as written) and golden examples are recorded when asked for. With `-o OUTDIR`, DIR is left as
it is: a copy gets all of the above, golden examples always, and is written as one
content-addressed bundle, `OUTDIR/NAME-VERSION-<sha256>.msbundle` (meshserve/core/bundle.py).

At load a runtime compares the recorded versions with the running ones: it warns on a
difference, or refuses to load when `environment.strict` is true.
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
    add_bundle_arguments(parser)
    parser.set_defaults(func=_package)


def add_bundle_arguments(parser) -> None:
    parser.add_argument("-o", "--output", metavar="OUTDIR", default=None,
                        help="write a content-addressed bundle NAME-VERSION-<sha256>.msbundle there "
                             "(DIR itself is left unchanged)")
    parser.add_argument("--training-data", metavar="FILE", default=None,
                        help="the training data (CSV, Parquet or JSON lines): its sha256 and row count are recorded")
    parser.add_argument("--code-revision", metavar="REV", default=None,
                        help="revision of the training code (default: git rev-parse HEAD of DIR, -dirty with changes)")
    parser.add_argument("--golden-from", metavar="FILE", default=None,
                        help="sample rows for golden examples (CSV, Parquet or JSON lines; default: made from the "
                             "signature's declared ranges and categories)")
    parser.add_argument("--golden-rows", metavar="N", type=int, default=None,
                        help=f"how many golden examples to record (default {DEFAULT_GOLDEN_ROWS})")
    parser.add_argument("--tolerance", metavar="T", type=float, default=None,
                        help="how far a later score may be from a golden output, absolute or relative "
                             "(default 1e-06)")


def _package(args) -> int:
    """In place: everything is done to a staged copy, and DIR's model.yaml (and golden.json) are
    replaced only once all of it succeeded, so a failed run leaves DIR exactly as it was."""
    import tempfile

    from meshserve.core.errors import ManifestError
    from meshserve.core.model_package import load_package
    from meshserve.environments.builder import EnvironmentBuildError
    from meshserve.environments.capture import environment_to_record

    package = load_package(args.package)
    if args.output is not None:
        return _bundle(args, package)
    environment = environment_to_record(package, args, capture_environment)
    environment["strict"] = bool(args.strict)
    environment["captured_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    golden_asked = bool(args.golden_from or args.golden_rows)
    with tempfile.TemporaryDirectory(prefix="meshserve-package-") as temporary:
        staging = _stage(package.directory, Path(temporary))
        try:
            write_environment(staging / "model.yaml", environment)
            notes = summary(environment) + check_environment(staging)
            notes += record_provenance(args, package, staging)
            if golden_asked:
                notes.append(record_golden(args, staging))
            load_package(staging)  # never publish a manifest that does not load
        except (ManifestError, EnvironmentBuildError) as exc:
            raise _in_place(exc, staging, package.directory) from None
        _publish(staging, package.directory, ["golden.json"] if golden_asked else [])
    print(f"recorded the environment of {package.name}:{package.version} in {package.manifest_path}"
          f"{' (strict)' if args.strict else ''}")
    for line in notes:
        print(f"  {line}")
    return 0


def _in_place(exc: Exception, staging: Path, directory: Path) -> Exception:
    """EXC as said of the package itself: the staged copy is gone, and no one should look for it."""
    from meshserve.environments.requirements import RequirementsError

    message = str(exc)
    for staged in {str(staging.resolve()), str(staging)}:
        message = message.replace(staged, str(directory))
    return RequirementsError(message)


def _stage(directory: Path, folder: Path) -> Path:
    """A copy of the package at DIRECTORY under FOLDER to complete. The files `package` rewrites are
    copied; the rest are hard links where the file system allows (a model can be large)."""
    import os
    import shutil

    from meshserve.core.bundle import packed_files

    staging = folder / directory.name
    for relative in packed_files(directory):
        source, target = directory / relative, staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative.as_posix() in ("model.yaml", "golden.json"):
            shutil.copy2(source, target)
            continue
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
    return staging


def _publish(staging: Path, directory: Path, names: list[str]) -> None:
    """Each of NAMES, then model.yaml (which names them), from STAGING into DIRECTORY, each replaced atomically."""
    import os
    import shutil

    for name in [*names, "model.yaml"]:
        temporary = directory / f".{name}.meshserve-tmp"
        shutil.copyfile(staging / name, temporary)
        os.replace(temporary, directory / name)


def check_environment(staging: Path) -> list[str]:
    """Refuse, before anything is written, a recorded Python environment whose pins cannot be
    resolved with what meshserve's adapter needs; a note when that could not be checked here."""
    import asyncio

    from meshserve.core.model_package import load_package
    from meshserve.environments.builder import EnvironmentBuildError, check_resolves
    from meshserve.environments.environment_spec import spec_for
    from meshserve.environments.requirements import RequirementsError

    spec = spec_for(load_package(staging))
    if spec is None:
        return []
    try:
        warning = asyncio.run(check_resolves(spec, lambda line: print(line, flush=True)))
    except EnvironmentBuildError as exc:
        raise RequirementsError(str(exc)) from None
    return [warning] if warning else []


DEFAULT_GOLDEN_ROWS = 8


def _bundle(args, package) -> int:
    """Complete a copy of the package and pack it; the copy has no capture time, so the same
    package and environment always give the same bundle."""
    import shutil
    import tempfile

    from meshserve.core.bundle import packed_files, write_bundle
    from meshserve.core.model_package import load_package

    with tempfile.TemporaryDirectory(prefix="meshserve-package-") as temporary:
        staging = Path(temporary) / package.directory.name
        for relative in packed_files(package.directory):
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(package.directory / relative, staging / relative)
        environment = _bundle_environment(package, args)
        environment["strict"] = bool(args.strict)
        write_environment(staging / "model.yaml", environment)
        notes = summary(environment) + check_environment(staging) + record_provenance(args, package, staging)
        notes.append(record_golden(args, staging))
        load_package(staging)  # never pack a manifest that does not load
        bundle = write_bundle(staging, package.name, package.version, Path(args.output))
    print(f"packaged {package.name}:{package.version} as {bundle}")
    for line in notes:
        print(f"  {line}")
    return 0


def record_provenance(args, package, target: Path) -> list[str]:
    """Training data fingerprint and code revision into TARGET/model.yaml `provenance:`."""
    from meshserve.deploy.data_files import fingerprint
    from meshserve.deploy.provenance import code_revision

    provenance = package.manifest.provenance.model_dump(exclude_none=True)
    notes = []
    if args.training_data:
        path = Path(args.training_data).resolve()
        found = fingerprint(path)
        provenance.update(training_data_sha256=found["sha256"], training_data_rows=found["rows"],
                          training_data=path.name)
        notes.append(f"training data {path.name}: sha256 {found['sha256'][:16]}..., {found['rows']} rows")
    # In place, the revision is looked up only when provenance is asked for: writing it into a
    # tracked model.yaml would itself make the work tree dirty.
    looked_up = args.output is not None or args.training_data is not None
    revision = args.code_revision or (code_revision(package.directory) if looked_up else None)
    if revision:
        provenance["code_revision"] = revision
        notes.append(f"code revision {revision}")
    if provenance != package.manifest.provenance.model_dump(exclude_none=True):
        write_top_level(target / "model.yaml", "provenance", provenance)
    return notes


def record_golden(args, target: Path) -> str:
    """Score sample rows in a fresh adapter of the package at TARGET; write golden.json there."""
    from meshserve.core.errors import ManifestError
    from meshserve.core.model_package import load_package
    from meshserve.deploy import golden
    from meshserve.deploy.fresh_adapter import LoadFailed

    package = load_package(target)
    count = args.golden_rows or DEFAULT_GOLDEN_ROWS
    if count < 1:
        raise ManifestError("--golden-rows", "--golden-rows", f"{count} is not a number of rows", "give 1 or more")
    signature = package.manifest.signature
    rows = (golden.rows_from_file(signature, Path(args.golden_from), count) if args.golden_from
            else golden.rows_for_package(package, count))
    tolerance = golden.DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    try:
        examples = golden.record(package, rows, tolerance)
    except LoadFailed as exc:
        raise ManifestError(str(package.manifest_path), "(model)", f"the model does not load in a fresh adapter: "
                            f"{exc}", "fix the package (`meshserve check --load DIR` shows the same)") from exc
    except Exception as exc:
        from meshserve.deploy.fresh_adapter import infer_error

        raise ManifestError(str(package.manifest_path), "(model)", "the model could not score the golden rows: "
                            f"{infer_error(exc)}", "fix the model or give rows it accepts with --golden-from FILE") from exc
    golden.write(target, examples)
    write_top_level(target / "model.yaml", "golden", golden.FILE_NAME)
    source = Path(args.golden_from).name if args.golden_from else "the signature's ranges"
    return f"{len(examples['examples'])} golden examples from {source} (tolerance {tolerance:g}) in {golden.FILE_NAME}"


def _bundle_environment(package, args) -> dict[str, Any]:
    """The training environment a bundle carries: from --requirements/--from-venv when given; else
    the Python pins model.yaml already records (capturing again would record the serving environment,
    not the one the model was trained in); else what the runtime captures."""
    from meshserve.environments.capture import environment_to_record

    recorded = dict(package.manifest.environment or {})
    if not (args.requirements or args.from_venv) and (recorded.get("python") or {}).get("requirements"):
        recorded.pop("captured_at", None)
        return recorded
    return environment_to_record(package, args, capture_environment)


def capture_environment(package) -> dict[str, Any]:
    """What the package's runtime records of its environment (Python's by default)."""
    return dict(package.options.capture_environment(package))


_TOP_LEVEL_LINE = re.compile(r"^\S")  # the next top-level key or comment ends the block


def write_environment(manifest_path: Path, environment: dict[str, Any]) -> None:
    """Replace (or append) the top-level `environment:` block, leaving every other line alone."""
    write_top_level(manifest_path, "environment", environment)


def write_top_level(manifest_path: Path, key: str, value: Any) -> None:
    """Replace (or append) the top-level KEY block, leaving every other line alone."""
    lines = manifest_path.read_text().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{key}:")), None)
    block = yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=False)
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
    """One line per world recorded, in the words of the runtime of that name (its options class)."""
    from meshserve.core.runtimes import options_class, runtime_names

    names = runtime_names()
    lines = []
    for key in [n for n in names if n in environment] + sorted(set(environment) - set(names)):
        recorded = environment[key]
        if key in ("strict", "captured_at"):
            continue
        described = options_class(key).describe_environment(recorded) \
            if key in names and isinstance(recorded, dict) else None
        lines.append(described or f"{key}: recorded")
    return lines
