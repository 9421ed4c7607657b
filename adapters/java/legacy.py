"""Path (b): legacy Java code described by the manifest's `legacy:` section.

Objects are built once at load from their argument specs; each request then runs the manifest's
calls, with per-row calls gathered into one io.meshserve.legacy.RowLoop call into Java when their
arguments allow it, and row by row from Python otherwise.
"""

from __future__ import annotations

import difflib
import json
import logging
from typing import Any, Callable

import numpy as np

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage
from meshserve.adapters.java.class_lookup import missing_class
from meshserve.adapters.java.dataset_width import check_row_widths, row_widths
from meshserve.adapters.java.arrays import (
    JAVA_ARRAYS, fit_shape, from_java, java_to_numpy, to_java_array, to_java_matrix,
)
from meshserve.adapters.java.options import VALUE_KINDS, JavaOptions, LegacyCall
from meshserve.adapters.runtime import Tensors

log = logging.getLogger("meshserve.adapters.java")


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
        self._options = options
        self._objects: dict[str, Any] = {}
        self._field = "java.legacy"  # where the spec being compiled is written, for its errors
        assert options.legacy is not None
        for name, spec in options.legacy.objects.items():
            self._field = f"java.legacy.objects.{name}"
            self._objects[name] = self._built(name, self._compile(spec))
        self._row_widths = row_widths(package, options.legacy, self._objects)
        self._first_input = package.manifest.signature.inputs[0].name
        signature = package.manifest.signature
        # Names resolved here, also for the calls the Java row loop runs: a typo is refused at start.
        compiled = [self._compile_call(call) for call in options.legacy.calls]
        per_row = [c for c in options.legacy.calls if c.each_row]
        # Per-row calls run in one Java loop per request when their arguments allow it (the
        # common case); otherwise each row is one round of calls from Python.
        self._row_loop = _JavaRowLoop.build(self, per_row) if per_row else None
        in_java = self._row_loop.calls if self._row_loop else []
        self._calls = [(call, invoke, signature.output(call.output))
                       for call, invoke in zip(options.legacy.calls, compiled) if not any(call is c for c in in_java)]
        self._row_loop_specs = [signature.output(c.output) for c in in_java]

    def _refuse(self, field: str, problem: str, fix: str) -> ManifestError:
        return ManifestError(str(self._package.manifest_path), field, problem, fix)

    def _built(self, name: str, build: Builder) -> Any:
        """Object NAME, built now; what Java throws names the object (a model file saved by another
        version of the library than the jar's is the usual cause)."""
        try:
            return build(_Request({}))
        except self._jpype.JException as exc:
            log.debug("building '%s' threw:\n%s", name, exc.stacktrace())
            raise self._refuse(f"java.legacy.objects.{name}",
                               f"building '{name}' threw {exc.getClass().getName()}: {exc.getMessage()}",
                               "check its arguments, and that the jars under java.classpath are the ones the model "
                               "was built and saved with (an InvalidClassException means another version)") from None

    def _class(self, name: str, field: str | None = None):
        """A class by the name Java users write: `FVec.Transformer` finds the nested `FVec$Transformer` too."""
        parts = name.split(".")
        # The binary name first, then each split of the trailing names into nested classes.
        candidates = [name] + [".".join(parts[:i]) + "$" + "$".join(parts[i:]) for i in range(len(parts) - 1, 0, -1)]
        for candidate in candidates:
            try:
                return self._jpype.JClass(candidate, loader=self._loader)
            except Exception:  # JPype raises the JVM's ClassNotFoundException (or a TypeError for odd names)
                continue
        raise missing_class(self._package, self._options, name, field or self._field)

    def _method(self, owner, name: str, field: str, what: str):
        """A method resolved when the model loads, so a typo is refused at start, not on every request."""
        try:
            return getattr(owner, name)
        except AttributeError:
            names = sorted({m for m in dir(owner) if not m.startswith("_")})
            close = difflib.get_close_matches(name, names, n=4, cutoff=0.6)
            close += [m for m in names if m.lower().startswith(name[:3].lower()) and m not in close]
            close = close[:8] or names[:8]
            raise self._refuse(field, f"{what} has no method '{name}'",
                               f"use one of its methods, such as {', '.join(close)}") from None

    def _compile_call(self, call: LegacyCall) -> Builder:
        field = f"java.legacy.calls.{call.output}"
        self._field = f"{field}.args"
        args = [self._compile(a) for a in call.args]
        if call.static is not None:
            cls_name, _, method = call.static.rpartition(".")
            target = self._method(self._class(cls_name, f"{field}.static"), method, f"{field}.static",
                                  f"class {cls_name}")
        else:
            obj = self._objects.get(call.target)
            if obj is None:
                raise self._refuse(f"{field}.target", f"no object named '{call.target}'",
                                   f"use one of {sorted(self._objects)}")
            target = self._method(obj, call.method, f"{field}.method", f"object '{call.target}' ({type(obj).__name__})")
        return lambda req: target(*[a(req) for a in args])

    def _compile(self, spec: Any) -> Builder:
        """Turn an argument spec into a function of the request, resolving classes once."""
        jp = self._jpype
        if spec is None or isinstance(spec, (bool, int, float, str)):
            value = jp.JString(spec) if isinstance(spec, str) else spec
            return lambda req: value
        kind = next(k for k in VALUE_KINDS if k in spec)
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
            array_type = jp.JArray(getattr(jp, JAVA_ARRAYS[datatype][1]))
            dtype = JAVA_ARRAYS[datatype][0]

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
            for method, _ in then:
                self._method(cls, method, self._field, f"class {arg}")

            def construct(req: _Request):
                obj = cls(*[a(req) for a in args])
                for method, step_args in then:
                    getattr(obj, method)(*[a(req) for a in step_args])
                return obj
            return construct
        cls_name, _, method = str(arg).rpartition(".")
        factory = self._method(self._class(cls_name), method, self._field, f"class {cls_name}")
        return lambda req: factory(*[a(req) for a in args])

    def predict(self, inputs: Tensors) -> Tensors:
        check_row_widths(inputs, self._row_widths)
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
                    results.append(java_to_numpy(invoke(req)))
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
            kind = next(k for k in VALUE_KINDS if k in spec)
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
        return [java_to_numpy(r) for r in results]


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
