"""The Java runtime: serve a jar through JPype inside the adapter process.

Two ways to ship a model (the `java:` section of model.yaml, checked by `JavaOptions`):
  (a) `class:` a class implementing `io.meshserve.Model` (Java source in adapters/java/), or
  (b) `legacy:` code that knows nothing of meshserve: objects built once at load by constructors or
      static methods (for example a deserialized model file), then one or more method calls per
      request, with the manifest saying how the request's tensors become the method's arguments
      (a flat array plus row count, a 2-D array, one call per row wrapped in the team's own row
      class, ...).

Why it is shaped this way (see docs/java-guide.md):
- One JVM per adapter process, started at load with the manifest's options and convertStrings=False.
  A JVM cannot restart inside a process and a process must not fork once it runs, so recovery from
  OutOfMemoryError is a process restart: the runtime answers UNAVAILABLE and stops its process,
  which the mesh starts again.
- The package's jars load through their own URLClassLoader; the JVM's class path holds only
  meshserve's API jar. Several packages can then share a process (tests, tools) without seeing
  each other's classes, and the classpath is data in the manifest rather than a JVM flag.
- Java calls release the GIL, so predict runs on a thread pool and concurrent requests run in
  parallel. Inputs cross as one flat contiguous primitive array (a memcpy), never as nested lists.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import re
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from meshserve.errors import InvalidInput, ManifestError, ModelFailed, ModelUnavailable
from meshserve.model_package import ModelPackage, TensorSpec
from meshserve.adapters.runtime import Runtime, Tensors

log = logging.getLogger("meshserve.adapters.java")

API_JAR_NAME = "meshserve-model-api.jar"
# Built by scripts/setup.d/40-java.sh from adapters/java/src; MESHSERVE_JAVA_API_JAR overrides.
DEFAULT_API_JAR = Path(__file__).resolve().parent / "java" / "build" / API_JAR_NAME


# --------------------------------------------------------------------------------------------
# The `java:` section of model.yaml
# --------------------------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class JarSpec(_Strict):
    """One jar of the model's class path."""

    path: str = Field(min_length=1, description="Relative to the package directory, or absolute (a system jar).")
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$",
        description="Digest the jar must have at load; `meshserve package` records it when absent.",
    )


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
_VALUE_KINDS = {"double", "float", "int", "long", "string", "boolean", "file", "object", "null",
                "input", "matrix", "rows", "row", "new", "static"}
_REQUEST_KINDS = {"input", "matrix", "rows", "row"}


def _check_value(value: Any, where: str, *, at_load: bool, each_row: bool) -> None:
    """Reject a malformed argument spec with the path to it, before any JVM starts."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a scalar or a mapping such as {{double: 1.0}}, got {value!r}")
    kinds = _VALUE_KINDS.intersection(value)
    if len(kinds) != 1:
        raise ValueError(f"{where}: name exactly one of {sorted(_VALUE_KINDS)}, got keys {sorted(value)}")
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


class JavaOptions(_Strict):
    """The `java:` section of model.yaml."""

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

    def check_package(self, package: ModelPackage) -> None:
        """File checks at manifest load: every jar and file argument exists; outputs are known."""
        for i, jar in enumerate(self.classpath):
            path = jar_path(package, jar)
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


def jar_path(package: ModelPackage, jar: JarSpec) -> Path:
    return Path(jar.path) if os.path.isabs(jar.path) else package.path(jar.path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Environment capture (`meshserve package`) and the digest check at load
# --------------------------------------------------------------------------------------------

def java_home() -> Path:
    """The Java installation JPype starts (JAVA_HOME, else the default JVM library's home)."""
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    import jpype  # importing jpype does not start a JVM

    libjvm = Path(jpype.getDefaultJVMPath()).resolve()
    return libjvm.parent.parent.parent  # <home>/lib/server/libjvm.so


def java_properties() -> dict[str, str]:
    """java.version, java.vendor and java.vm.name of that Java, from a separate `java` process:
    starting a JVM here would forbid the calling process to fork afterwards."""
    result = subprocess.run([str(java_home() / "bin" / "java"), "-XshowSettings:properties", "-version"],
                            capture_output=True, text=True, timeout=60)
    props = {}
    for line in result.stderr.splitlines():
        match = re.match(r"\s+(java\.version|java\.vendor|java\.vm\.name|java\.runtime\.version) = (.*)", line)
        if match:
            props[match.group(1)] = match.group(2).strip()
    return props


def capture_environment(package: ModelPackage) -> dict[str, Any]:
    """What `meshserve package` records under `environment.java`: Java version and jar digests."""
    options: JavaOptions = package.options  # type: ignore[assignment]
    props = java_properties()
    return {"java": {
        "version": props.get("java.runtime.version", props.get("java.version", "unknown")),
        "vendor": props.get("java.vendor", "unknown"),
        "vm": props.get("java.vm.name", "unknown"),
        "jars": {jar.path: sha256_of(jar_path(package, jar)) for jar in options.classpath},
    }}


def recorded_digests(package: ModelPackage) -> dict[str, str]:
    """Jar digests the manifest expects: `classpath[].sha256`, then `environment.java.jars`."""
    options: JavaOptions = package.options  # type: ignore[assignment]
    env = package.manifest.environment or {}
    captured = (env.get("java") or {}).get("jars") or {}
    expected = {}
    for jar in options.classpath:
        if jar.sha256:
            expected[jar.path] = jar.sha256
        elif jar.path in captured:
            expected[jar.path] = str(captured[jar.path])
    return expected


def verify_jars(package: ModelPackage) -> None:
    """Refuse to load when a jar differs from the one the manifest recorded."""
    options: JavaOptions = package.options  # type: ignore[assignment]
    expected = recorded_digests(package)
    for i, jar in enumerate(options.classpath):
        if jar.path not in expected:
            continue
        actual = sha256_of(jar_path(package, jar))
        if actual != expected[jar.path]:
            raise ManifestError(
                str(package.manifest_path), f"java.classpath[{i}].sha256",
                f"jar {jar_path(package, jar)} changed since the model was packaged: "
                f"model.yaml records sha256 {expected[jar.path]}, the file has sha256 {actual}",
                "restore the jar the model was packaged with, or re-run `meshserve package` if the change is intended",
            )


def check_java_version(package: ModelPackage) -> None:
    """Compare the running Java with the one `meshserve package` recorded: a warning, or a refusal
    when the environment is strict. Call after the JVM started."""
    import jpype

    env = package.manifest.environment or {}
    recorded = (env.get("java") or {}).get("version")
    running = str(jpype.JClass("java.lang.System").getProperty("java.runtime.version"))
    if not recorded or str(recorded) == running:
        return
    if env.get("strict"):
        raise ManifestError(str(package.manifest_path), "environment.java.version",
                            f"the model was packaged with Java {recorded} but this JVM is {running}",
                            "run the adapter with that Java (JAVA_HOME), or re-run `meshserve package` after testing")
    log.warning("model packaged with Java %s, running on %s", recorded, running)


# --------------------------------------------------------------------------------------------
# The JVM: once per process
# --------------------------------------------------------------------------------------------

_jvm_lock = threading.Lock()
_jvm_pid: int | None = None
_jvm_options: tuple[str, ...] = ()


def _forbid_use_after_fork() -> None:
    if _jvm_pid is not None:
        log.error("process forked after its JVM started; the child cannot use Java (start a new process instead)")


os.register_at_fork(after_in_child=_forbid_use_after_fork)


def api_jar() -> Path:
    path = Path(os.environ.get("MESHSERVE_JAVA_API_JAR", DEFAULT_API_JAR))
    if not path.is_file():
        raise ModelUnavailable(f"meshserve's Java API jar {path} is missing; run scripts/setup.sh to build it")
    return path


def start_jvm(options: JavaOptions) -> None:
    """Start this process's JVM, or reuse it if it runs (its options cannot change any more)."""
    global _jvm_pid, _jvm_options
    import jpype

    wanted = tuple(jvm_arguments(options))
    with _jvm_lock:
        if jpype.isJVMStarted():
            if _jvm_pid is not None and _jvm_pid != os.getpid():
                raise ModelUnavailable("this process was forked after its JVM started; Java cannot run here")
            if wanted != _jvm_options:
                log.warning("JVM already running with %s; ignoring %s", _jvm_options, wanted)
            return
        # -Xrs: leave SIGTERM/SIGINT to the adapter server, whose graceful stop must run.
        jpype.startJVM(*wanted, classpath=[str(api_jar())], convertStrings=False, interrupt=False)
        _jvm_pid, _jvm_options = os.getpid(), wanted
        log.info("JVM %s started with %s", jpype.getJVMVersion(), " ".join(wanted))


def jvm_arguments(options: JavaOptions) -> list[str]:
    args = ["-Xrs"]
    if options.heap:
        args.append(f"-Xmx{options.heap}")
    return args + list(options.jvm_options)


# --------------------------------------------------------------------------------------------
# Tensors <-> Java arrays
# --------------------------------------------------------------------------------------------

# V2 datatype -> (numpy dtype the Java array is filled from, JPype primitive type name)
_JAVA_ARRAYS = {
    "FP64": (np.float64, "JDouble"), "FP32": (np.float32, "JFloat"), "FP16": (np.float32, "JFloat"),
    "INT64": (np.int64, "JLong"), "UINT64": (np.int64, "JLong"), "UINT32": (np.int64, "JLong"),
    "INT32": (np.int32, "JInt"), "UINT16": (np.int32, "JInt"),
    "INT16": (np.int16, "JShort"), "UINT8": (np.int16, "JShort"), "INT8": (np.int8, "JByte"),
    "BOOL": (np.bool_, "JBoolean"), "BYTES": (object, "JString"),
}
_NUMPY_OUT = {
    "FP64": np.float64, "FP32": np.float32, "FP16": np.float16, "INT64": np.int64, "UINT64": np.uint64,
    "INT32": np.int32, "UINT32": np.uint32, "INT16": np.int16, "UINT16": np.uint16, "INT8": np.int8,
    "UINT8": np.uint8, "BOOL": np.bool_, "BYTES": object,
}


def to_java_array(name: str, values: np.ndarray, datatype: str):
    """A flat Java primitive array filled from VALUES in one copy (String[] for BYTES)."""
    import jpype

    dtype, jtype = _JAVA_ARRAYS[datatype]
    if datatype == "BYTES":
        try:
            texts = [v.decode("utf-8") if isinstance(v, (bytes, bytearray)) else str(v) for v in values.reshape(-1)]
        except UnicodeDecodeError as exc:
            raise InvalidInput(name, f"BYTES values must be UTF-8 text for a Java model ({exc})") from exc
        return jpype.JArray(jpype.JString)(texts)
    flat = np.ascontiguousarray(values.reshape(-1), dtype=dtype)
    return jpype.JArray(getattr(jpype, jtype))(flat)


def to_java_matrix(name: str, values: np.ndarray, datatype: str):
    import jpype

    dtype, jtype = _JAVA_ARRAYS[datatype]
    rows = np.ascontiguousarray(values.reshape(values.shape[0], -1), dtype=dtype)
    return jpype.JArray(getattr(jpype, jtype), 2)([r for r in rows])


def from_java(value: Any, spec: TensorSpec, rows: int) -> np.ndarray:
    """A Java result (array, Tensor, String, boxed or primitive scalar) as the output SPEC."""
    import jpype

    shape = None
    if isinstance(value, jpype.JObject) and value.getClass().getName() == "io.meshserve.Tensor":
        shape = [int(d) for d in value.shape()]
        value = value.data()
    array = _java_to_numpy(value)
    return fit_shape(array, spec, rows, shape)


def _java_to_numpy(value: Any) -> np.ndarray:
    import jpype

    if value is None:
        raise ModelFailed("Java model returned null")
    if isinstance(value, jpype.JArray):
        try:  # primitive arrays expose their memory: one copy, no per-element calls
            return np.array(memoryview(value))
        except (TypeError, BufferError):
            pass
        component = value.getClass().getComponentType()
        if component.isPrimitive():
            return np.array(value)  # buffer protocol: one copy
        if component.getName() == "java.lang.String":
            return np.array([None if s is None else str(s).encode("utf-8") for s in value], dtype=object)
        return np.array([_java_to_numpy(v) for v in value])
    if isinstance(value, (jpype.JString, str)):
        return np.array([str(value).encode("utf-8")], dtype=object)
    if isinstance(value, (bool, int, float)):
        return np.array([value])
    if isinstance(value, jpype.JObject) and value.getClass().getName().startswith("java.lang."):
        return np.array([value.doubleValue() if hasattr(value, "doubleValue") else bool(value.booleanValue())])
    raise ModelFailed(f"cannot turn a Java {value.getClass().getName()} into a tensor; return a primitive array or io.meshserve.Tensor")


def fit_shape(array: np.ndarray, spec: TensorSpec, rows: int, shape: list[int] | None = None) -> np.ndarray:
    """Reshape a flat or stacked result to the declared output shape (-1 dims from the row count)."""
    out_dtype = _NUMPY_OUT[spec.datatype]
    if shape is None:
        fixed = math.prod(d for d in spec.shape if d != -1)
        variable = [i for i, d in enumerate(spec.shape) if d == -1]
        if len(variable) == 1 and fixed and array.size % fixed == 0:
            shape = [array.size // fixed if d == -1 else d for d in spec.shape]
        elif not variable and array.size == fixed:
            shape = list(spec.shape)
        elif spec.accepts_shape(array.shape):
            shape = list(array.shape)
        else:
            raise ModelFailed(f"Java model returned {array.size} values for output '{spec.name}' "
                              f"of shape {spec.shape} and {rows} rows; return an io.meshserve.Tensor with its shape")
    if math.prod(shape) != array.size or not spec.accepts_shape(shape):
        raise ModelFailed(f"Java model returned shape {shape} for output '{spec.name}', declared {spec.shape}")
    if spec.shape and spec.shape[0] == -1 and shape[0] != rows:
        raise ModelFailed(f"Java model returned {shape[0]} rows for output '{spec.name}', the request has {rows}")
    if out_dtype is object:
        return array.reshape(shape).astype(object)
    return array.reshape(shape).astype(out_dtype, copy=False)


# --------------------------------------------------------------------------------------------
# Path (a): io.meshserve.Model
# --------------------------------------------------------------------------------------------

class InterfaceModel:
    """A class written for meshserve's interface: one predict(Map<String, Tensor>) call per request."""

    def __init__(self, package: ModelPackage, options: JavaOptions, loader):
        import jpype

        api = jpype.JClass("io.meshserve.Model")
        cls = jpype.JClass(options.model_class, loader=loader)
        if not api.class_.isAssignableFrom(cls.class_):
            raise ManifestError(str(package.manifest_path), "java.class",
                                f"{options.model_class} does not implement io.meshserve.Model",
                                "implement the interface (adapters/java/src/io/meshserve/Model.java) or use `legacy:`")
        self._tensor = jpype.JClass("io.meshserve.Tensor")
        self._hashmap = jpype.JClass("java.util.HashMap")
        self._long_array = jpype.JArray(jpype.JLong)
        context_options = self._hashmap()
        for key, value in options.options.items():
            context_options.put(key, str(value).lower() if isinstance(value, bool) else str(value))
        context = jpype.JClass("io.meshserve.ModelContext")(
            package.name, package.version, jpype.JClass("java.nio.file.Path").of(str(package.directory)),
            context_options)
        self._model = cls()
        self._model.load(context)
        self._signature = package.manifest.signature

    def predict(self, inputs: Tensors) -> Tensors:
        java_inputs = self._hashmap()
        rows = 0
        for spec in self._signature.inputs:
            values = inputs[spec.name]
            rows = rows or (values.shape[0] if values.ndim else 1)
            java_inputs.put(spec.name, self._tensor(self._long_array(list(values.shape)),
                                                    to_java_array(spec.name, values, spec.datatype)))
        result = self._model.predict(java_inputs)
        if result is None:
            raise ModelFailed("Java model returned null instead of a map of outputs")
        outputs = {}
        for spec in self._signature.outputs:
            if not result.containsKey(spec.name):
                raise ModelFailed(f"Java model returned no output '{spec.name}' (it returned {sorted(str(k) for k in result.keySet())})")
            outputs[spec.name] = from_java(result.get(spec.name), spec, rows)
        return outputs

    def close(self) -> None:
        self._model.close()


# --------------------------------------------------------------------------------------------
# Path (b): legacy code, described by the manifest
# --------------------------------------------------------------------------------------------

class _Request:
    """What argument builders read: the request's tensors and, in each_row calls, the row."""

    __slots__ = ("inputs", "row")

    def __init__(self, inputs: Tensors):
        self.inputs = inputs
        self.row = 0


Builder = Callable[[_Request], Any]


class LegacyModel:
    """Objects built once at load, then the manifest's calls per request (or per row)."""

    def __init__(self, package: ModelPackage, options: JavaOptions, loader):
        import jpype

        self._jpype = jpype
        self._package = package
        self._loader = loader
        self._datatypes = {s.name: s.datatype for s in package.manifest.signature.inputs}
        self._objects: dict[str, Any] = {}
        assert options.legacy is not None
        for name, spec in options.legacy.objects.items():
            self._objects[name] = self._compile(spec)(_Request({}))
        self._first_input = package.manifest.signature.inputs[0].name
        signature = package.manifest.signature
        per_row = [c for c in options.legacy.calls if c.each_row]
        # Per-row calls run in one Java loop per request when their arguments allow it (the
        # common case); otherwise each row is one round of calls from Python.
        self._row_loop = _JavaRowLoop.build(self, per_row) if per_row else None
        in_java = self._row_loop.calls if self._row_loop else []
        self._calls = [(call, self._compile_call(call), signature.output(call.output))
                       for call in options.legacy.calls if not any(call is c for c in in_java)]
        self._row_loop_specs = [signature.output(c.output) for c in in_java]

    def _class(self, name: str):
        return self._jpype.JClass(name, loader=self._loader)

    def _compile_call(self, call: LegacyCall) -> Builder:
        args = [self._compile(a) for a in call.args]
        if call.static is not None:
            cls_name, _, method = call.static.rpartition(".")
            target = getattr(self._class(cls_name), method)
        else:
            obj = self._objects.get(call.target)
            if obj is None:
                raise ManifestError(str(self._package.manifest_path), f"java.legacy.calls.{call.output}.target",
                                    f"no object named '{call.target}'", f"use one of {sorted(self._objects)}")
            target = getattr(obj, call.method)
        return lambda req: target(*[a(req) for a in args])

    def _compile(self, spec: Any) -> Builder:
        """Turn an argument spec into a function of the request, resolving classes once."""
        jp = self._jpype
        if spec is None or isinstance(spec, (bool, int, float, str)):
            value = jp.JString(spec) if isinstance(spec, str) else spec
            return lambda req: value
        kind = next(k for k in _VALUE_KINDS if k in spec)
        arg = spec[kind]
        if kind in ("double", "float", "int", "long", "boolean"):
            value = getattr(jp, "J" + kind.capitalize())(arg)
            return lambda req: value
        if kind == "string":
            value = jp.JString(str(arg))
            return lambda req: value
        if kind == "file":
            value = jp.JString(str(self._package.path(str(arg))))
            return lambda req: value
        if kind == "null":
            value = jp.JObject(None, self._class(str(arg)))
            return lambda req: value
        if kind == "object":
            if arg not in self._objects:
                raise ManifestError(str(self._package.manifest_path), "java.legacy",
                                    f"object '{arg}' is used before it is built", "list objects in the order they are needed")
            value = self._objects[arg]
            return lambda req: value
        if kind == "input":
            datatype = self._datatypes[arg]
            return lambda req: to_java_array(arg, req.inputs[arg], datatype)
        if kind == "matrix":
            datatype = self._datatypes[arg]
            return lambda req: to_java_matrix(arg, req.inputs[arg], datatype)
        if kind == "rows":
            return lambda req: jp.JInt(req.inputs[arg].shape[0])
        if kind == "row":
            datatype = self._datatypes[arg]
            tail = np.array(spec.get("append", []) or [], dtype=float)
            array_type = jp.JArray(getattr(jp, _JAVA_ARRAYS[datatype][1]))
            dtype = _JAVA_ARRAYS[datatype][0]

            def row(req: _Request):
                values = req.inputs[arg][req.row].reshape(-1)
                if tail.size:
                    values = np.concatenate([values, tail])
                return array_type(np.ascontiguousarray(values, dtype=dtype))
            return row
        args = [self._compile(a) for a in spec.get("args", []) or []]
        if kind == "new":
            cls = self._class(str(arg))
            then = [(step["method"], [self._compile(a) for a in step.get("args", []) or []])
                    for step in spec.get("then", []) or []]

            def construct(req: _Request):
                obj = cls(*[a(req) for a in args])
                for method, step_args in then:
                    getattr(obj, method)(*[a(req) for a in step_args])
                return obj
            return construct
        cls_name, _, method = str(arg).rpartition(".")
        factory = getattr(self._class(cls_name), method)
        return lambda req: factory(*[a(req) for a in args])

    def predict(self, inputs: Tensors) -> Tensors:
        req = _Request(inputs)
        rows = inputs[self._first_input].shape[0] if inputs[self._first_input].ndim else 1
        outputs = {}
        if self._row_loop is not None:
            for spec, array in zip(self._row_loop_specs, self._row_loop.run(inputs, rows)):
                outputs[spec.name] = fit_shape(array, spec, rows)
        for call, invoke, spec in self._calls:
            if call.each_row:
                results = []
                for i in range(rows):
                    req.row = i
                    results.append(_java_to_numpy(invoke(req)))
                array = np.stack(results) if results else np.empty((0,))
                outputs[call.output] = fit_shape(array, spec, rows)
            else:
                outputs[call.output] = from_java(invoke(req), spec, rows)
        return outputs

    def close(self) -> None:
        self._objects.clear()


class _JavaRowLoop:
    """The per-row calls of a legacy model as one io.meshserve.legacy.RowLoop: a request of N rows
    is one call into Java, and an argument spec shared by several calls (Weka's Instance) is built
    once per row."""

    def __init__(self, loop, input_names: list[str], datatypes: dict[str, str], calls: list[LegacyCall]):
        import jpype

        self.calls = calls
        self._loop = loop
        self._input_names = input_names
        self._datatypes = datatypes
        self._object_array = jpype.JArray(jpype.JObject)
        self._int_array = jpype.JArray(jpype.JInt)

    @classmethod
    def build(cls, model: "LegacyModel", calls: list[LegacyCall]) -> "_JavaRowLoop | None":
        import jpype

        row_loop = jpype.JClass("io.meshserve.legacy.RowLoop")
        arg_type = jpype.JClass("io.meshserve.legacy.RowLoop$Arg")
        slots: dict[str, int] = {}
        inputs: list[str] = []

        def slot(spec: dict) -> int:
            return slots.setdefault(json.dumps(spec, sort_keys=True), len(slots))

        def arg(spec: Any):
            if spec is None or isinstance(spec, (bool, int, float, str)):
                return row_loop.constant(_boxed(jpype, spec))
            kind = next(k for k in _VALUE_KINDS if k in spec)
            if kind in ("input", "matrix", "rows"):
                raise _NotInJava(kind)
            if kind == "row":
                name = spec["row"]
                if spec.get("append") and model._datatypes[name] != "FP64":
                    raise _NotInJava("append to a non-FP64 row")
                if model._datatypes[name] == "BYTES":
                    raise _NotInJava("BYTES row")
                if name not in inputs:
                    inputs.append(name)
                append = spec.get("append") or None
                return row_loop.row(slot(spec), inputs.index(name),
                                    None if append is None else jpype.JArray(jpype.JDouble)([float(v) for v in append]))
            if kind == "new":
                then = spec.get("then", []) or []
                return row_loop.construct(
                    slot(spec), model._class(str(spec["new"])).class_, args(spec.get("args")),
                    jpype.JArray(jpype.JString)([step["method"] for step in then]),
                    jpype.JArray(arg_type, 2)([args(step.get("args")) for step in then]))
            if kind == "static":
                cls_name, _, method = str(spec["static"]).rpartition(".")
                return row_loop.invokeStatic(slot(spec), model._class(cls_name).class_, method, args(spec.get("args")))
            return row_loop.constant(_boxed(jpype, model._compile(spec)(_Request({}))))

        def args(specs: list[Any] | None):
            return jpype.JArray(arg_type)([arg(a) for a in specs or []])

        in_java, call_args = [], []
        for call in calls:
            try:
                call_args.append(args(call.args))
                in_java.append(call)
            except _NotInJava as reason:
                log.info("output '%s' is scored row by row from Python (the Java row loop cannot pass %s)",
                         call.output, reason)
        if not in_java:
            return None
        calls = in_java
        targets = [model._class(c.static.rpartition(".")[0]).class_ if c.static else model._objects[c.target]
                   for c in calls]
        methods = [c.static.rpartition(".")[2] if c.static else c.method for c in calls]
        loop = row_loop(jpype.JArray(jpype.JObject)(targets), jpype.JArray(jpype.JString)(methods),
                        jpype.JArray(arg_type, 2)(call_args), len(slots))
        return cls(loop, inputs, model._datatypes, calls)

    def run(self, inputs: Tensors, rows: int) -> list[np.ndarray]:
        arrays = [to_java_array(name, inputs[name], self._datatypes[name]) for name in self._input_names]
        widths = [int(np.prod(inputs[name].shape[1:], dtype=np.int64)) for name in self._input_names]
        results = self._loop.run(self._object_array(arrays), self._int_array(widths), rows)
        return [_java_to_numpy(r) for r in results]


class _NotInJava(Exception):
    """An argument the Java row loop cannot build; those calls run row by row from Python."""


def _boxed(jpype, value: Any):
    """A Python or JPype scalar as the Java object a reflective call receives."""
    if value is None or isinstance(value, jpype.JObject):
        return value
    boxes = [(jpype.JBoolean, "java.lang.Boolean"), (jpype.JDouble, "java.lang.Double"),
             (jpype.JFloat, "java.lang.Float"), (jpype.JLong, "java.lang.Long"), (jpype.JInt, "java.lang.Integer"),
             (bool, "java.lang.Boolean"), (int, "java.lang.Integer"), (float, "java.lang.Double")]
    for kind, box in boxes:
        if isinstance(value, kind):
            return jpype.JObject(value, box)
    if isinstance(value, str):
        return jpype.JString(value)
    return value


# --------------------------------------------------------------------------------------------
# The runtime
# --------------------------------------------------------------------------------------------

class JavaRuntime(Runtime):
    """Serve a Java model package (path (a) or (b)) from this process's JVM."""

    def __init__(self) -> None:
        self._model: InterfaceModel | LegacyModel | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._broken: str | None = None
        self._invalid_argument: list[Any] = []

    async def load(self, package: ModelPackage) -> None:
        # Synchronous on purpose: the JVM is started once, before the server takes requests.
        self.package = package
        options: JavaOptions = package.options  # type: ignore[assignment]
        self._options = options
        verify_jars(package)
        start_jvm(options)
        import jpype

        check_java_version(package)
        loader = self._class_loader(package, options)
        thread = jpype.JClass("java.lang.Thread")
        thread.currentThread().setContextClassLoader(loader)
        self._invalid_argument = [jpype.JClass(name, loader=loader).class_
                                  for name in options.invalid_argument_exceptions]
        try:
            if options.model_class is not None:
                self._model = InterfaceModel(package, options, loader)
            else:
                self._model = LegacyModel(package, options, loader)
        except jpype.JException as exc:
            log.error("Java model failed to load:\n%s", exc.stacktrace())
            raise ModelUnavailable(f"Java model did not load: {exc.getClass().getName()}: {exc.getMessage()}") from exc

        def attach() -> None:
            # Worker threads see the package's classes through the context class loader too.
            thread.currentThread().setContextClassLoader(loader)

        self._pool = ThreadPoolExecutor(options.threads, thread_name_prefix="java-predict", initializer=attach)

    @staticmethod
    def _class_loader(package: ModelPackage, options: JavaOptions):
        import jpype

        url = jpype.JClass("java.net.URL")
        urls = jpype.JArray(url)([jpype.JClass("java.io.File")(str(jar_path(package, jar))).toURI().toURL()
                                  for jar in options.classpath])
        parent = jpype.JClass("java.lang.ClassLoader").getSystemClassLoader()
        return jpype.JClass("java.net.URLClassLoader")(urls, parent)

    async def predict(self, inputs: Tensors) -> Tensors:
        if self._broken or self._model is None or self._pool is None:
            raise ModelUnavailable(self._broken or "Java model is not loaded")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._predict_in_thread, inputs)

    def _predict_in_thread(self, inputs: Tensors) -> Tensors:
        import jpype

        try:
            return self._model.predict(inputs)  # type: ignore[union-attr]
        except jpype.JException as exc:
            raise self._status_for(exc) from exc

    def _status_for(self, exc) -> Exception:
        """The Java exception as the error the adapter server turns into a gRPC status."""
        name = exc.getClass().getName()
        message = exc.getMessage()
        described = f"{name}: {message}" if message is not None else name
        if name == "java.lang.OutOfMemoryError":
            log.error("Java model ran out of memory:\n%s", exc.stacktrace())
            if self._options.on_out_of_memory == "restart":
                self._broken = f"{described}; the adapter restarts, retry shortly"
                self._restart_process()
                return ModelUnavailable(f"model raised {self._broken}")
            return ModelFailed(f"model raised {described} (java)")
        if any(cls.isInstance(exc) for cls in self._invalid_argument):
            return InvalidInput(None, f"model rejected the input: {described}")
        log.warning("Java model raised:\n%s", exc.stacktrace())
        return ModelFailed(f"model raised {described} (java)")

    def _restart_process(self) -> None:
        """Stop this process gracefully so the mesh starts a fresh one with a fresh JVM: the JVM
        cannot restart in-process. The short delay lets the UNAVAILABLE answer go out first."""
        log.error("stopping the adapter process after OutOfMemoryError; the mesh restarts it")
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()

    async def ready(self) -> bool:
        return self._model is not None and self._broken is None

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._model is not None:
            try:
                self._model.close()
            except Exception as exc:  # closing must not hide the reason we stop
                log.warning("Java model close failed: %s", exc)
        self._model = None
