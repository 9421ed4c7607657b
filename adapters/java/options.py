"""The `java:` section of model.yaml: its pydantic models and the file checks at manifest load.

Two ways to ship a model (checked by `JavaOptions`):
  (a) `class:` a class implementing `io.meshserve.Model` (Java source in adapters/java/), or
  (b) `legacy:` code that knows nothing of meshserve: objects built once at load by constructors or
      static methods (for example a deserialized model file), then one or more method calls per
      request, with the manifest saying how the request's tensors become the method's arguments
      (a flat array plus row count, a 2-D array, one call per row wrapped in the team's own row
      class, ...).

Nothing here imports jpype: checking a manifest never starts a JVM.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from meshserve.adapters.runtime import ReplicaResources, RuntimeOptions
from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage
from meshserve.core.strict_model import StrictModel


class _Strict(StrictModel):
    model_config = ConfigDict(populate_by_name=True)  # merged with StrictModel's: forbid, frozen


class JarSpec(_Strict):
    """One jar of the model's class path."""

    path: str = Field(min_length=1, description="Relative to the package directory, or absolute (a system jar).")
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$",
        description="Digest the jar must have at load; `meshserve package` records it when absent.",
    )

    def file(self, package: ModelPackage) -> Path:
        """Where the jar is: an absolute path as written, else inside the package."""
        return Path(self.path) if os.path.isabs(self.path) else package.path(self.path)


# A value in `legacy:` (constructor and method arguments, objects). Written as YAML, one of:
#   a bare scalar (JPype picks the overload)   {double: 1.0} {int: 3} {long: 3} {float: 1.5}
#   {string: "text"} {boolean: true}           {file: relative/path}  -> absolute path as String
#   {object: name}    an object built at load  {null: ClassName}      -> typed null
#   {input: name}     the whole input as one flat primitive array (double[] for FP64, ...)
#   {matrix: name}    the whole input as a 2-D array (double[][]); slower than {input}
#   {rows: name}      the input's row count (int)
#   {row: name, append: [...]}  in `each_row` calls: this row as a flat primitive array,
#                     optionally followed by constant values (Weka wants a slot for the class)
#   {new: Class, args: [...], then: [{method: m, args: [...]}, ...]}  construct, then call setters
#   {static: Class.method, args: [...]}                               a static factory
VALUE_KINDS = {"double", "float", "int", "long", "string", "boolean", "file", "object", "null",
                "input", "matrix", "rows", "row", "new", "static"}
_REQUEST_KINDS = {"input", "matrix", "rows", "row"}


def _check_value(value: Any, where: str, *, at_load: bool, each_row: bool) -> None:
    """Reject a malformed argument spec with the path to it, before any JVM starts."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a scalar or a mapping such as {{double: 1.0}}, got {value!r}")
    kinds = VALUE_KINDS.intersection(value)
    if len(kinds) != 1:
        raise ValueError(f"{where}: name exactly one of {sorted(VALUE_KINDS)}, got keys {sorted(value)}")
    kind = kinds.pop()
    allowed = {kind} | {"new": {"args", "then"}, "static": {"args"}, "row": {"append"}}.get(kind, set())
    if set(value) - allowed:
        raise ValueError(f"{where}: unexpected keys {sorted(set(value) - allowed)} next to '{kind}'")
    if kind in _REQUEST_KINDS and at_load:
        raise ValueError(f"{where}: '{kind}' refers to a request input, which does not exist at load")
    if kind == "row" and not each_row:
        raise ValueError(f"{where}: 'row' needs `each_row: true` on its call (use 'input' for the whole batch)")
    if kind == "static" and "." not in str(value["static"]):
        raise ValueError(f"{where}: 'static' takes Class.method, got {value['static']!r}")
    for i, arg in enumerate(value.get("args", []) or []):
        _check_value(arg, f"{where}.args[{i}]", at_load=at_load, each_row=each_row)
    for i, step in enumerate(value.get("then", []) or []):
        if not isinstance(step, dict) or "method" not in step or set(step) - {"method", "args"}:
            raise ValueError(f"{where}.then[{i}]: expected {{method: name, args: [...]}}")
        for j, arg in enumerate(step.get("args", []) or []):
            _check_value(arg, f"{where}.then[{i}].args[{j}]", at_load=at_load, each_row=each_row)


class LegacyCall(_Strict):
    """One Java call per request (or per row) whose result becomes one output."""

    output: str = Field(description="The signature output this call's result fills.")
    # Not `on:`, which YAML 1.1 reads as the boolean true.
    target: str | None = Field(default=None, description="Name of an object built at load whose method is called.")
    method: str | None = Field(default=None, description="Instance method of `target`.")
    static: str | None = Field(default=None, description="Or a static method, Class.method.")
    each_row: bool = Field(default=False, description="Call once per row (results are stacked).")
    args: list[Any] = Field(default_factory=list)

    @model_validator(mode="after")
    def _target(self) -> "LegacyCall":
        if (self.static is None) == (self.method is None):
            raise ValueError(f"call for output '{self.output}': give either `method` (with `target`) or `static`")
        if self.method is not None and self.target is None:
            raise ValueError(f"call for output '{self.output}': `method` needs `target: <object name>`")
        if self.static is not None and "." not in self.static:
            raise ValueError(f"call for output '{self.output}': `static` takes Class.method")
        for i, arg in enumerate(self.args):
            _check_value(arg, f"call '{self.output}' args[{i}]", at_load=False, each_row=self.each_row)
        return self


class LegacyOptions(_Strict):
    """Path (b): Java code that knows nothing of meshserve."""

    objects: dict[str, Any] = Field(
        default_factory=dict,
        description="Built once at load, in order: name -> {new: ...} or {static: ...}; later ones may use earlier ones.",
    )
    calls: list[LegacyCall] = Field(min_length=1)

    @field_validator("objects")
    @classmethod
    def _objects(cls, objects: dict[str, Any]) -> dict[str, Any]:
        for name, spec in objects.items():
            _check_value(spec, f"objects.{name}", at_load=True, each_row=False)
        return objects


class JavaOptions(RuntimeOptions):
    """The `java:` section of model.yaml."""

    model_config = ConfigDict(populate_by_name=True)
    resources: ClassVar[ReplicaResources] = ReplicaResources(memory="1Gi")  # the JVM's heap and metaspace

    classpath: list[JarSpec] = Field(default_factory=list, description="The model's jars, in lookup order.")
    heap: str | None = Field(default=None, pattern=r"^[0-9]+[kKmMgG]?$", description="Largest heap, as -Xmx (512m, 2g).")
    jvm_options: list[str] = Field(default_factory=list, description="Further JVM options, each starting with '-'.")
    model_class: str | None = Field(default=None, alias="class", description="Path (a): a class implementing io.meshserve.Model.")
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Path (a): passed to Model.load as text (ModelContext.options())."
    )
    legacy: LegacyOptions | None = Field(default=None, description="Path (b): objects and calls for legacy code.")
    threads: int = Field(default=8, ge=1, le=256, description="Requests that may run Java code at the same time.")
    invalid_argument_exceptions: list[str] = Field(
        default_factory=lambda: ["java.lang.IllegalArgumentException"],
        description="Java exceptions (and their subclasses) that mean bad input: INVALID_ARGUMENT, not INTERNAL.",
    )
    on_out_of_memory: Literal["restart", "continue"] = Field(
        default="restart",
        description="restart: answer UNAVAILABLE and restart the adapter process; continue: answer INTERNAL and keep the JVM.",
    )

    @field_validator("jvm_options")
    @classmethod
    def _dash(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not v.startswith("-")]
        if bad:
            raise ValueError(f"JVM options start with '-': {bad}")
        return values

    @model_validator(mode="after")
    def _one_path(self) -> "JavaOptions":
        if (self.model_class is None) == (self.legacy is None):
            raise ValueError("give either `class` (implements io.meshserve.Model) or `legacy` (objects and calls)")
        return self

    def working_slots(self) -> int:
        return self.threads

    def capture_environment(self, package: ModelPackage) -> dict[str, Any]:
        """The Java version and every jar's digest (environment.py)."""
        from meshserve.adapters.java.environment import capture_environment

        return capture_environment(package)

    @classmethod
    def describe_environment(cls, recorded: dict[str, Any]) -> str:
        return f"Java {recorded.get('version')} ({recorded.get('vm')}) with {len(recorded.get('jars', {}))} jar digests"

    def check_package(self, package: ModelPackage) -> None:
        """File checks at manifest load: every jar and file argument exists; outputs are known."""
        for i, jar in enumerate(self.classpath):
            path = jar.file(package)
            if not path.is_file():
                raise ManifestError(str(package.manifest_path), f"java.classpath[{i}].path",
                                    f"jar {path} does not exist",
                                    "build the jar (scripts/setup.sh) or correct the path")
        if self.legacy is None:
            return
        outputs = {o.name for o in package.manifest.signature.outputs}
        inputs = {i.name for i in package.manifest.signature.inputs}
        for i, call in enumerate(self.legacy.calls):
            if call.output not in outputs:
                raise ManifestError(str(package.manifest_path), f"java.legacy.calls[{i}].output",
                                    f"'{call.output}' is not an output of the signature",
                                    f"use one of {sorted(outputs)}")
            for ref in _input_refs(call.args):
                if ref not in inputs:
                    raise ManifestError(str(package.manifest_path), f"java.legacy.calls[{i}].args",
                                        f"'{ref}' is not an input of the signature", f"use one of {sorted(inputs)}")
        for name, spec in self.legacy.objects.items():
            for rel in _file_refs(spec):
                if not package.path(rel).exists():
                    raise ManifestError(str(package.manifest_path), f"java.legacy.objects.{name}",
                                        f"file {package.path(rel)} does not exist",
                                        "train or copy the model file into the package (scripts/setup.sh)")


def _walk(value: Any):
    if isinstance(value, dict):
        yield value
        for key in ("args", "then"):
            for item in value.get(key, []) or []:
                yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _input_refs(args: list[Any]) -> list[str]:
    return [str(v[k]) for v in _walk(args) for k in _REQUEST_KINDS if k in v]


def _file_refs(spec: Any) -> list[str]:
    return [str(v["file"]) for v in _walk(spec) if "file" in v]


