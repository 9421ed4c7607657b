"""The validation gate: what a model version must pass before it takes any live traffic.

Each check has a name and, when it fails, a reason naming the cause:

- `digest`: the bundle the version was unpacked from still has the bytes its name promises;
- `loads`: the package loads in a fresh adapter process (the runtime, its files, R packages,
  the predict function, the JVM and jars: whatever serving would need);
- `golden`: its golden examples score within their tolerance in that adapter; without any, one
  row made up inside what the model takes (made_up_rows.py) scores, and a made-up row the model
  refuses as bad input warns, naming what to add, rather than failing a correct version;
- `signature`: it takes what the version it joins takes (no removed or renamed input, no
  changed datatype or shape, no feature the live version uses left out, no new input the
  live version's clients do not send) unless the change is allowed;
- `environment`: its captured environment matches the one it will run in; differences are
  listed as warnings, or fail the gate when strict.

`meshserve check` runs the same checks that need no live version; the control API's
Deploy runs them all before it changes a split (router/control_plane/control_service.py).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field

from meshserve.core.bundle import verify_bundle
from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage, Signature
from meshserve.deploy import golden
from meshserve.deploy.failure_lines import manifest_line, one_line, without_manifest_line
from meshserve.deploy.fresh_adapter import FreshAdapter, LoadFailed, infer_error


@dataclass
class Check:
    name: str
    passed: bool
    reason: str
    warnings: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)  # the fresh adapter's last lines, for `--debug`

    def lines(self) -> list[str]:
        mark = "ok  " if self.passed and not self.warnings else ("warn" if self.passed else "FAIL")
        return [f"{mark}  {self.name}: {self.reason}"] + [f"        {w}" for w in self.warnings[:8]] + (
            [f"        ... and {len(self.warnings) - 8} more"] if len(self.warnings) > 8 else [])


@dataclass
class GateResult:
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def refused_by(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def lines(self) -> list[str]:
        return [line for check in self.checks for line in check.lines()]

    def as_log(self) -> dict:
        return {"passed": self.passed, "checks": {c.name: ("passed" if c.passed else f"failed: {c.reason}")
                                                  for c in self.checks}}


def check_digest(package: ModelPackage) -> Check:
    bundle = package.bundle
    if bundle is None:
        return Check("digest", True, f"a package folder, not a bundle (digest {package.digest[:16]}... of its files)")
    try:
        verify_bundle(bundle)
    except FileNotFoundError:
        return Check("digest", False, f"the bundle {bundle} it was unpacked from is gone; the unpacked copy "
                     "cannot be checked against it")
    except ManifestError as exc:
        return Check("digest", False, f"{exc.path}: {exc.problem}")
    return Check("digest", True, f"bundle {bundle.name} intact (sha256 {package.digest[:16]}...)")


def check_loads_and_golden(package: ModelPackage) -> list[Check]:
    """Load PACKAGE in a fresh adapter and score its golden examples there. A failure's reason is
    the runtime's line naming the file, the field and the fix, where it gave one."""
    try:
        examples = golden.load(package)
    except ManifestError as exc:
        return [Check("loads", False, "not tried"), Check("golden", False, f"{exc.problem}. Fix: {exc.fix}")]
    started = time.monotonic()
    try:
        with FreshAdapter(package.directory) as adapter:
            loaded = Check("loads", True, f"loaded in a fresh adapter in {time.monotonic() - started:.1f} s")
            if examples is None:
                scored = _smoke(adapter, package)
            else:
                scored = _golden_check(package, golden.check(adapter, package, examples))
            if not scored.passed:
                scored.output = adapter.output
    except LoadFailed as exc:
        return [Check("loads", False, one_line(package, str(exc)), output=exc.output),
                Check("golden", False, "not run: the model did not load")]
    return [loaded, scored]


def _golden_check(package: ModelPackage, result: golden.GoldenResult) -> Check:
    """Examples the model refused because of the package (a runtime said which field to fix) fail
    on that line; the counts and what the model said follow it."""
    line = manifest_line(package, result.errors[0]) if result.errors else None
    if line is None:
        return Check("golden", result.ok, " ".join(result.describe().split()))
    return Check("golden", False, line, [without_manifest_line(result.describe())])


def _smoke(adapter: FreshAdapter, package: ModelPackage) -> Check:
    """Without golden examples, at least one row made up inside what the model takes must score.

    A made-up row the model refuses as bad input (INVALID_ARGUMENT: a value outside a domain it
    keeps in its own code) says nothing about the version, so it does not fail the gate: the
    check warns and names what to add instead."""
    row = golden.rows_for_package(package, 1)
    try:
        golden._score(adapter, package, row[0])
    except Exception as exc:
        said = " ".join(infer_error(exc).split())
        if not _refused_as_input(exc):
            line = manifest_line(package, said)
            if line is not None:
                return Check("golden", False, line, ["no golden examples; a row made up from the signature got "
                                                     + without_manifest_line(said)])
            return Check("golden", False, f"no golden examples, and a row made up from the signature failed: {said}")
        return Check("golden", True, "no golden examples recorded, and the model refused a row made up from the "
                     "signature as input it does not take, so nothing was scored",
                     [f"the model said: {said}", ADD_GOLDEN])
    return Check("golden", True, "no golden examples recorded (`meshserve package DIR -o OUTDIR` records them); "
                 "one row made up from the signature scored")


ADD_GOLDEN = ("add golden examples from real rows: `meshserve package DIR --golden-from FILE` writes golden.json "
              "and `golden: golden.json` in model.yaml; or declare each input's limits (range, categories) so "
              "made-up rows stay inside them (docs/model-package.md, 'Golden examples')")


def _refused_as_input(exc: BaseException) -> bool:
    status = getattr(exc, "status", None)
    return callable(status) and "INVALID_ARGUMENT" in str(status() or "")


def signature_changes(new: Signature, live: Signature) -> list[str]:
    """What a client of the live version would find different, one line per difference."""
    changes = []
    for kind, live_specs, find in (("input", live.inputs, new.input), ("output", live.outputs, new.output)):
        for spec in live_specs:
            other = find(spec.name)
            if other is None:
                changes.append(f"{kind} '{spec.name}' of the live version is missing (removed or renamed)")
                continue
            if other.datatype != spec.datatype:
                changes.append(f"{kind} '{spec.name}': datatype {spec.datatype} became {other.datatype}")
            if other.shape != spec.shape:
                changes.append(f"{kind} '{spec.name}': shape {spec.shape} became {other.shape}")
            had, has = spec.features or [], other.features or []
            lost = [f for f in had if f not in has]
            if lost:
                changes.append(f"{kind} '{spec.name}': feature(s) {', '.join(lost)} of the live version are missing")
            elif had and has and had != has:
                changes.append(f"{kind} '{spec.name}': features are in another order ({', '.join(has)})")
    for spec in new.inputs:
        if live.input(spec.name) is None:
            changes.append(f"input '{spec.name}' is new: clients of the live version do not send it")
    return changes


def check_signature(package: ModelPackage, live: ModelPackage | None, allow_change: bool) -> Check:
    if live is None:
        return Check("signature", True, "no other live version to compare with")
    changes = signature_changes(package.manifest.signature, live.manifest.signature)
    against = f"version {live.version}"
    if not changes:
        return Check("signature", True, f"the same inputs and outputs as live {against}")
    if allow_change:
        return Check("signature", True, f"differs from live {against}, allowed (--allow-signature-change)", changes)
    return Check("signature", False, f"differs from live {against}: " + "; ".join(changes) +
                 " (pass --allow-signature-change if clients are ready for it)")


def environment_differences(package: ModelPackage) -> tuple[list[str], list[str]]:
    """(differences, what could not be compared) between the recorded and the running environment."""
    recorded = package.manifest.environment or {}
    differences: list[str] = []
    unchecked: list[str] = []
    if "python" in recorded:
        differences += _python_differences(recorded["python"])
    if "r" in recorded:
        differences += _r_differences(recorded["r"], unchecked)
    for world in sorted(set(recorded) - {"python", "r", "strict", "captured_at"}):
        unchecked.append(f"{world}: compared by its runtime when it loads")
    return differences, unchecked


def check_environment(package: ModelPackage, strict: bool) -> Check:
    if not package.manifest.environment:
        return Check("environment", not strict, "no environment recorded (`meshserve package` records it)"
                     + (" and --strict needs one" if strict else ""))
    differences, unchecked = environment_differences(package)
    if not differences:
        return Check("environment", True, "the running environment matches the recorded one", unchecked)
    summary = f"{len(differences)} difference(s) from the recorded environment"
    if strict:
        return Check("environment", False, f"{summary} (--strict): " + "; ".join(differences[:5])
                     + ("; ..." if len(differences) > 5 else ""), differences[5:])
    return Check("environment", True, f"{summary} (warnings; --strict refuses)", differences)


def run_gate(package: ModelPackage, live: ModelPackage | None, *, allow_signature_change: bool = False,
             strict: bool = False) -> GateResult:
    checks = [check_digest(package)]
    if checks[0].passed:
        checks += check_loads_and_golden(package)
    checks.append(check_signature(package, live, allow_signature_change))
    checks.append(check_environment(package, strict))
    return GateResult(checks)


# -- the running environment -------------------------------------------------------------------

def _requirement(line: str) -> tuple[str, str] | None:
    name, sep, version = line.partition("==")
    return (name.strip().lower().replace("_", "-"), version.strip()) if sep else None


def _python_differences(recorded: dict) -> list[str]:
    import platform

    from meshserve.adapters.runtime import python_environment

    differences = []
    if recorded.get("version") and recorded["version"] != platform.python_version():
        differences.append(f"Python: recorded {recorded['version']}, running {platform.python_version()}")
    wanted = dict(filter(None, (_requirement(line) for line in recorded.get("packages") or [])))
    running = dict(filter(None, (_requirement(line) for line in python_environment()["python"]["packages"])))
    for name, version in sorted(wanted.items()):
        have = running.get(name)
        if have != version:
            differences.append(f"Python package {name}: recorded {version}, running {have or 'not installed'}")
    return differences


_R_VERSIONS = (
    'cat(paste(R.version$major, R.version$minor, sep = "."), "\\n");'
    'for (p in commandArgs(TRUE)) {'
    ' v <- suppressWarnings(utils::packageDescription(p, fields = "Version"));'
    ' cat(p, if (is.na(v)) "not-installed" else v, "\\n") }')


def _r_differences(recorded: dict, unchecked: list[str]) -> list[str]:
    rscript = shutil.which("Rscript")
    if rscript is None:
        return ["R: recorded, but R is not installed here"]
    wanted = {str(k): str(v) for k, v in (recorded.get("packages") or {}).items()}
    done = subprocess.run([rscript, "--vanilla", "-e", _R_VERSIONS, "--args", *sorted(wanted)],
                          capture_output=True, text=True, timeout=60, check=False)
    lines = done.stdout.split("\n")
    if done.returncode != 0 or not lines:
        unchecked.append(f"R: could not ask Rscript for versions ({done.stderr.strip()[-200:]})")
        return []
    differences = []
    have_r = lines[0].strip()
    if recorded.get("version") and str(recorded["version"]) != have_r:
        differences.append(f"R: recorded {recorded['version']}, running {have_r}")
    running = dict(line.split(None, 1) for line in lines[1:] if len(line.split()) == 2)
    for name, version in sorted(wanted.items()):
        have = running.get(name, "not-installed").strip().replace("not-installed", "not installed")
        if have != version:
            differences.append(f"R package {name}: recorded {version}, running {have}")
    return differences
