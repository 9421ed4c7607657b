"""The model package: a directory holding `model.yaml` and the model's files.

`load_package` reads and checks the manifest; a malformed one raises `ManifestError`
naming the file, the field and the fix, before any process starts.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from meshserve.core.errors import ManifestError
from meshserve.core.feature_limits import FeatureLimit, check_limits
from meshserve.core.input_policy import InputPolicy
from meshserve.core.runtimes import BUILT_IN, ENTRY_POINT_GROUP, runtime_entry, runtime_names
from meshserve.core.strict_model import StrictModel, manifest_error, repeated, version_as_text

MANIFEST_NAME = "model.yaml"

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]


class TensorSpec(StrictModel):
    """One input or output of a model."""

    name: str = Field(min_length=1)
    datatype: Datatype
    shape: list[int] = Field(description="Dimensions; -1 marks a variable one (usually the batch).")
    features: list[str] | None = Field(
        default=None, description="Names of the columns along the last axis, in order."
    )
    limits: dict[str, FeatureLimit] | None = Field(
        default=None, description="Expected range or categories per feature (see meshserve/core/feature_limits.py)."
    )
    pii: bool = Field(
        default=False, description="Personal data: prediction records keep only a keyed hash (HMAC-SHA256) of it."
    )

    @field_validator("shape")
    @classmethod
    def _dims(cls, shape: list[int]) -> list[int]:
        if any(d == 0 or d < -1 for d in shape):
            raise ValueError("every dimension must be a positive size or -1 (variable)")
        return shape

    @model_validator(mode="after")
    def _features_match_shape(self) -> "TensorSpec":
        if self.features is not None:
            if not self.shape or self.shape[-1] not in (-1, len(self.features)):
                raise ValueError(
                    f"{len(self.features)} feature names but the last dimension of shape "
                    f"{self.shape} is not {len(self.features)}"
                )
            if len(set(self.features)) != len(self.features):
                raise ValueError("feature names must be unique")
        if self.limits:
            check_limits(self.limits, self.features or [self.name], self.datatype)
        return self

    def accepts_shape(self, shape: tuple[int, ...] | list[int]) -> bool:
        return len(shape) == len(self.shape) and all(
            want == -1 or want == got for want, got in zip(self.shape, shape)
        )


class Signature(StrictModel):
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> "Signature":
        for kind, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            dupes = repeated(s.name for s in specs)
            if dupes:
                raise ValueError(f"{kind} names must be unique; repeated: {', '.join(dupes)}")
        return self

    def input(self, name: str) -> TensorSpec | None:
        return next((s for s in self.inputs if s.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((s for s in self.outputs if s.name == name), None)


class Batching(StrictModel):
    """Micro-batching of concurrent requests into one predict call (off when max_batch_size is 1)."""

    max_batch_size: int = Field(default=1, ge=1, description="Most rows in one coalesced call.")
    max_wait_us: int = Field(default=0, ge=0, description="Longest a queued request waits for a batch to fill.")
    concurrency: int = Field(default=1, ge=1, description="Batches that may run at once (for runtimes with workers).")


class MlflowOrigin(StrictModel):
    """The MLflow Model Registry version a package was imported from, pinned by number and digest."""

    tracking_uri: str
    registered_model: str
    version: str
    alias: str | None = Field(default=None, description="The alias it was imported by; it pointed at `version` then.")
    run_id: str | None = None
    source: str = Field(description="Where the registry keeps the version's files (e.g. models:/m-...).")
    flavour: Literal["sklearn", "pyfunc"]
    artifacts_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 over the imported files (mlflow-model/).")
    imported_at: str | None = None

    _text_version = field_validator("version", mode="before")(version_as_text)


class Provenance(StrictModel):
    """Where the model came from, carried by every prediction record it makes."""

    training_data_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="sha256 of the training data (a file or a canonical dump).")
    training_data: str | None = Field(default=None, description="Where the training data lives (URI or description).")
    training_data_rows: int | None = Field(default=None, ge=0, description="Rows of the training data file.")
    code_revision: str | None = Field(default=None, description="Revision of the training code (e.g. a git commit).")
    mlflow: MlflowOrigin | None = Field(
        default=None, description="The MLflow registry version it was imported from (`meshserve import`; docs/mlflow.md).")


class Manifest(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    version: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    runtime: str = Field(description="The model's world: a name in the table of runtimes, meshserve/core/runtimes.py "
                         "(python, r, java, triton, or one an installed package adds).")
    entrypoint: str | None = Field(
        default=None, description="What the runtime loads: a file in the package or module:function."
    )
    description: str = ""
    signature: Signature
    batching: Batching = Batching()
    provenance: Provenance = Provenance()
    baseline: str | None = Field(
        default=None, description="File in the package with its training data's feature statistics, which the "
        "drift monitor compares live inputs and outputs with (`meshserve baseline` writes it; docs/drift.md).")
    environment: dict[str, Any] | None = Field(
        default=None, description="What `meshserve package` captured: language and library versions, digests."
    )
    golden: str | None = Field(
        default=None, description="File in the package with its golden examples: inputs, the outputs they must "
        "give and the tolerance (`meshserve package --golden-from` records it; docs/model-package.md).")
    input_policy: InputPolicy = Field(
        default_factory=InputPolicy, description="Values refused before the model sees them (NaN, inf, zero rows).")
    runtime_sections: dict[str, dict[str, Any]] = Field(
        default_factory=dict, exclude=True,
        description="Each runtime's own section (`python:`, `r:`, ...), keyed by runtime name; "
                    "written in model.yaml as a top-level field named after the runtime.")

    _text_version = field_validator("version", mode="before")(version_as_text)

    @model_validator(mode="before")
    @classmethod
    def _gather_runtime_sections(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        sections = {name: raw.pop(name) for name in runtime_names() if name in raw}
        for name, section in sections.items():
            if section is not None and not isinstance(section, dict):
                raise ValueError(f"the '{name}' section must be a mapping of options")
        raw["runtime_sections"] = {name: section or {} for name, section in sections.items()}
        return raw

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, runtime: str) -> str:
        names = runtime_names()
        if runtime not in names:
            raise ValueError(f"unknown runtime '{runtime}'; meshserve runs " + ", ".join(f"'{r}'" for r in names))
        return runtime

    def runtime_section(self) -> dict[str, Any]:
        return self.runtime_sections.get(self.runtime) or {}


class ModelPackage:
    """A loaded, checked model package: its manifest and where its files live."""

    def __init__(self, directory: Path, manifest: Manifest, options: BaseModel | None):
        self.directory = directory
        self.manifest = manifest
        self.options = options

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_NAME

    def path(self, relative: str) -> Path:
        return (self.directory / relative).resolve()

    @functools.cached_property
    def digest(self) -> str:
        """What identifies this exact package in prediction records and spans: the bundle's
        sha256 when it was unpacked from one, else sha256 over every file of the package
        (relative paths and contents, in path order)."""
        from meshserve.core.bundle import bundle_of

        unpacked = bundle_of(self.directory)
        return unpacked["digest"] if unpacked else package_digest(self.directory)

    @property
    def bundle(self) -> Path | None:
        """The bundle file this package was unpacked from, if any."""
        from meshserve.core.bundle import bundle_of

        unpacked = bundle_of(self.directory)
        return Path(unpacked["bundle"]) if unpacked else None

    def __repr__(self) -> str:
        return f"ModelPackage({self.name}:{self.version} at {self.directory})"


def _fixes(path: Path):
    def fix(err: dict) -> str | None:
        if err["type"] == "missing":
            return f"add the field to {path.name}"
        if err["type"] == "extra_forbidden":
            return "remove the field or check its spelling (allowed fields are listed in docs/model-package.md)"
        if "unknown runtime" in err["msg"]:
            return ("set runtime to one of the names listed, or install the package that adds the runtime "
                    f"(an entry point in the group {ENTRY_POINT_GROUP}; docs/architecture.md, 'Runtimes')")
        return getattr(err.get("ctx", {}).get("error"), "fix", None)  # errors that carry their fix
    return fix


def _manifest_error(path: Path, exc: ValidationError, prefix: str = "") -> ManifestError:
    return manifest_error(str(path), exc, _fixes(path), prefix=prefix,
                          default_fix="correct the value as described (see docs/model-package.md)")


def _install_fix(runtime: str) -> str:
    if runtime in BUILT_IN:
        return f"install meshserve with the '{BUILT_IN[runtime].extra or runtime}' extra"
    return f"reinstall the package that adds runtime '{runtime}' (its entry point in the group {ENTRY_POINT_GROUP})"


def package_digest(directory: Path) -> str:
    total = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not {"__pycache__", ".meshserve"} & set(p.relative_to(directory).parts)):
        total.update(path.relative_to(directory).as_posix().encode() + b"\0")
        total.update(bytes.fromhex(sha256_of(path)))
    return total.hexdigest()


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file: what `meshserve package` records for model files and jars."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_package(directory: str | Path) -> ModelPackage:
    """Read and check `DIR/model.yaml`, including the runtime's own section."""
    directory = Path(directory).resolve()
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(str(path), "(file)", "no model.yaml here", "create model.yaml (see docs/model-package.md)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ManifestError(str(path), "(file)", f"not valid YAML: {exc}", "fix the YAML syntax") from exc
    if not isinstance(raw, dict):
        raise ManifestError(str(path), "(top level)", "expected a mapping of fields", "write `name: ...`, `version: ...` and so on")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise _manifest_error(path, exc) from exc
    try:
        entry = runtime_entry(manifest.runtime)
        options = entry.options_class().model_validate(manifest.runtime_section())
    except ValidationError as exc:
        raise _manifest_error(path, exc, prefix=f"{manifest.runtime}.") from exc
    except (ImportError, AttributeError) as exc:
        raise ManifestError(str(path), "runtime", f"runtime '{manifest.runtime}' is not installed here ({exc})",
                            _install_fix(manifest.runtime)) from exc
    package = ModelPackage(directory, manifest, options)
    if manifest.golden is not None and not package.path(manifest.golden).is_file():
        raise ManifestError(str(path), "golden", f"'{manifest.golden}' is not a file in the package",
                            "run `meshserve package DIR --golden-from FILE` to record golden examples, or drop the field")
    if manifest.baseline is not None and not package.path(manifest.baseline).is_file():
        raise ManifestError(str(path), "baseline", f"'{manifest.baseline}' is not a file in the package",
                            "run `meshserve baseline DIR --data TRAINING_DATA` to make it, or drop the field")
    options.check_package(package)  # the runtime's own file checks; raises ManifestError
    return package


@dataclass(frozen=True)
class BrokenPackage:
    """A package that could not be loaded: where it is, the model it names (if readable), why."""

    directory: Path
    model: str | None
    error: ManifestError


def _model_named_in(manifest: Path) -> str | None:
    try:
        raw = yaml.safe_load(manifest.read_text())
    except (OSError, yaml.YAMLError):
        return None
    name = raw.get("name") if isinstance(raw, dict) else None
    return str(name) if name is not None else None


def discover_packages(root: str | Path, broken: list[BrokenPackage] | None = None) -> list[ModelPackage]:
    """Every model package under ROOT (a package directory itself, or a folder of them).

    A malformed package raises ManifestError, unless BROKEN is given: then it is appended there
    and the others are returned, so one bad package need not stop a mesh serving the rest."""
    from meshserve.core.bundle import SUFFIX, is_bundle, unpack_bundle

    root = Path(root).resolve()
    if not root.exists():
        raise ManifestError(str(root), "(path)", "does not exist", "pass a folder that holds model packages")
    bundles: list[Path] = []
    if is_bundle(root):
        manifests, bundles = [], [root]
    elif (root / MANIFEST_NAME).is_file():
        manifests = [root / MANIFEST_NAME]
    else:  # follow links, so a folder of symlinked packages works
        walked = [(Path(d), files) for d, dirs, files in os.walk(root, followlinks=True)
                  if "node_modules" not in Path(d).parts and ".meshserve" not in Path(d).parts]
        manifests = sorted(d / MANIFEST_NAME for d, files in walked if MANIFEST_NAME in files)
        bundles = sorted(d / f for d, files in walked for f in files if f.endswith(SUFFIX))
    packages = []
    for manifest in manifests:
        try:
            packages.append(load_package(manifest.parent))
        except ManifestError as exc:
            if broken is None:
                raise
            broken.append(BrokenPackage(manifest.parent, _model_named_in(manifest), exc))
    for bundle in bundles:  # each unpacked once into the cache, by digest, after its digest is checked
        try:
            unpacked = unpack_bundle(bundle)
            packages.append(load_package(unpacked))
        except ManifestError as exc:
            if broken is None:
                raise
            broken.append(BrokenPackage(bundle, None, exc))
    if broken:  # a model with one broken version is not served at all: its split would be wrong
        unusable = {b.model for b in broken if b.model}
        packages = [p for p in packages if p.name not in unusable]
    seen: dict[tuple[str, str], ModelPackage] = {}
    for p in packages:
        key = (p.name, p.version)
        if key in seen:
            raise ManifestError(str(p.manifest_path), "version",
                                f"{p.name} version {p.version} is also in {seen[key].manifest_path}",
                                "give each package of the same model its own version")
        seen[key] = p
    if not packages:
        if broken:
            raise broken[0].error
        raise ManifestError(str(root), "(path)", "no model.yaml found", "point at a folder of model packages")
    return packages
