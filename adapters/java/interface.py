"""Path (a): a class written for meshserve's interface, io.meshserve.Model."""

from __future__ import annotations

from meshserve.core.errors import ManifestError, ModelFailed
from meshserve.core.model_package import ModelPackage
from meshserve.adapters.java.arrays import from_java, to_java_array
from meshserve.adapters.java.class_lookup import missing_class
from meshserve.adapters.java.options import JavaOptions
from meshserve.adapters.runtime import Tensors


class InterfaceModel:
    """A class written for meshserve's interface: one predict(Map<String, Tensor>) call per request."""

    def __init__(self, package: ModelPackage, options: JavaOptions, loader):
        import jpype

        api = jpype.JClass("io.meshserve.Model")
        try:
            cls = jpype.JClass(options.model_class, loader=loader)
        except Exception as exc:  # JPype raises the JVM's ClassNotFoundException (or a TypeError for odd names)
            raise missing_class(package, options, options.model_class, "java.class") from exc
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
