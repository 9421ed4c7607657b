"""Python models: a `module:function` callable, a scikit-learn style estimator saved with joblib
(or skops), an ONNX graph, or an MLflow pyfunc model folder.

A callable takes a dict of named numpy arrays and returns a dict of named arrays (or one
array when the model has one output). An estimator fitted on a numpy array gets its input as
one 2-D array (several inputs are joined column-wise in declared order); one fitted on a
pandas DataFrame (a Pipeline with a ColumnTransformer, say) gets a DataFrame of the columns it
was fitted on (frames.py). Each output comes from the method the manifest names:
`python: {methods: {label: predict, probabilities: predict_proba}}`. An `.onnx` entrypoint runs
in onnxruntime (onnx_model.py); a folder holding an MLmodel file is loaded with
`mlflow.pyfunc.load_model` in the package's own environment (mlflow_model.py).

Categories are checked before predict (categories.py): those the model's encoders learnt (a
scikit-learn OneHotEncoder or OrdinalEncoder with handle_unknown='error', an ONNX
OneHotEncoder), else those model.yaml's limits declare; an unknown one is INVALID_ARGUMENT
naming the input, the column, the row and the value, never the model's INTERNAL error.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from typing import Any, Callable, ClassVar

import numpy as np
from pydantic import Field

from meshserve.adapters.python.categories import Column, estimator_columns, learnt_categories, refused_value
from meshserve.adapters.python.frames import FramePlan
from meshserve.adapters.python.load_errors import load_estimator, missing_dependency, missing_method
from meshserve.adapters.python.workers import PredictWorkers, rows_of
from meshserve.adapters.runtime import ReplicaResources, Runtime, RuntimeOptions, Tensors, request_deadline
from meshserve.core.category_check import CategoryCheck, KnownCategories, declared_categories, merged
from meshserve.core.errors import InvalidInput, ManifestError
from meshserve.core.model_package import ModelPackage
from meshserve.core.settings import get_settings

log = logging.getLogger("meshserve.adapters.python")

ESTIMATOR_SUFFIXES = (".joblib", ".pkl", ".pickle", ".skops")
ONNX_SUFFIX = ".onnx"


class PythonOptions(RuntimeOptions):
    """The `python:` section of model.yaml."""

    resources: ClassVar[ReplicaResources] = ReplicaResources(startup_s=60)

    methods: dict[str, str] | None = Field(
        default=None, description="Estimator only: output name -> estimator method that computes it."
    )
    threads: int | None = Field(
        default=None, ge=0, description="Threads running predict (0: on the event loop). Default: settings."
    )
    on_loop_below_ms: float | None = Field(
        default=None, ge=0, description="Estimator only: calls of a size this model has answered 32 times in a "
        "row in under this many milliseconds of CPU run on the event loop, without the hand-off to a thread (0: never). "
        "Default: settings.")
    trusted_types: list[str] | None = Field(
        default=None, description="A .skops entrypoint only: types beyond skops' defaults it may load "
        "(MLflow's skops_trusted_types)."
    )

    def working_slots(self) -> int:
        return get_settings().python_threads if self.threads is None else self.threads

    @classmethod
    def describe_environment(cls, recorded: dict[str, Any]) -> str:
        if "requirements" in recorded:
            return (f"Python {recorded.get('version')} with {len(recorded['requirements'])} pinned requirements "
                    f"(from {recorded.get('source', 'the training environment')}; `meshserve up` builds its own "
                    "environment)")
        return f"Python {recorded.get('version')} with {len(recorded.get('packages', []))} packages"

    def check_package(self, package: ModelPackage) -> None:
        from meshserve.environments.environment_spec import check_recorded

        check_recorded(package)
        entry = package.manifest.entrypoint
        where = str(package.manifest_path)
        if not entry:
            raise ManifestError(where, "entrypoint", "missing", "name a joblib file (model.joblib) or module:function")
        if entry.endswith(ESTIMATOR_SUFFIXES):
            if not package.path(entry).is_file():
                raise ManifestError(where, "entrypoint", f"file {package.path(entry)} does not exist",
                                    "train or copy the model file into the package (see its train script)")
            outputs = [o.name for o in package.manifest.signature.outputs]
            methods = self.methods or ({outputs[0]: "predict"} if len(outputs) == 1 else None)
            if methods is None:
                raise ManifestError(where, "python.methods", f"{len(outputs)} outputs but no estimator method for each",
                                    "add python: {methods: {OUTPUT: predict, ...}} naming a method per output")
            missing = [o for o in outputs if o not in methods]
            if missing:
                raise ManifestError(where, "python.methods", f"no method for output(s) {', '.join(missing)}",
                                    "map every output to an estimator method such as predict or predict_proba")
        elif entry.endswith(ONNX_SUFFIX):
            if not package.path(entry).is_file():
                raise ManifestError(where, "entrypoint", f"file {package.path(entry)} does not exist",
                                    "export the model to ONNX into the package")
        elif is_mlflow_model(package):
            from meshserve.adapters.python.mlflow_model import check_pyfunc_package

            check_pyfunc_package(package)
        elif ":" not in entry:
            raise ManifestError(where, "entrypoint", f"'{entry}' is neither a joblib or skops file, an .onnx file, an "
                                "MLflow model folder nor module:function",
                                "write e.g. entrypoint: model.joblib, model.onnx or mymodule:predict")


    def check_model(self, package: ModelPackage) -> None:
        """Load the model file and check the signature against it (what `meshserve check` adds), in the
        package's own environment when it has one."""
        from meshserve.environments.builder import check_in_own_environment

        if check_in_own_environment(package):
            return
        entry = package.manifest.entrypoint
        if entry.endswith(ESTIMATOR_SUFFIXES):
            check_estimator_inputs(load_estimator(package), package)
        elif entry.endswith(ONNX_SUFFIX):
            from meshserve.adapters.python.onnx_model import OnnxModel

            OnnxModel(package, threads=1)  # raises ManifestError where the graph disagrees
        elif is_mlflow_model(package):
            from meshserve.adapters.python.mlflow_model import PyfuncModel

            PyfuncModel(package)  # raises ManifestError when it does not load or its columns are not inputs


def is_mlflow_model(package: ModelPackage) -> bool:
    """The entrypoint is an MLflow model folder (it holds MLmodel)."""
    entry = package.manifest.entrypoint or ""
    return ":" not in entry and (package.path(entry) / "MLmodel").is_file()


def check_estimator_inputs(estimator: Any, package: ModelPackage) -> FramePlan | None:
    """Columns for a DataFrame estimator (its plan), 2-D inputs for a numpy one: refused at load, not per request."""
    frame = FramePlan.for_estimator(estimator, package)  # raises ManifestError naming missing columns
    if frame is not None:
        return frame
    wanted = getattr(estimator, "n_features_in_", None)
    for index, spec in enumerate(package.manifest.signature.inputs):
        if len(spec.shape) != 2:
            hint = f"[-1, {wanted}]" if wanted is not None and len(package.manifest.signature.inputs) == 1 else \
                "[-1, N] (rows x features)"
            raise ManifestError(str(package.manifest_path), f"signature.inputs[{index}].shape",
                                f"{type(estimator).__name__} takes a 2-D array (rows x features), but input "
                                f"'{spec.name}' is declared {spec.shape}", f"declare shape {hint}")
    return None


class PythonRuntime(Runtime):
    def __init__(self) -> None:
        self._call: Callable[[Tensors], Tensors] | None = None
        self._workers: PredictWorkers | None = None
        self._categories = CategoryCheck([])

    async def load(self, package: ModelPackage) -> None:
        self.package = package
        options: PythonOptions = package.options
        entry = package.manifest.entrypoint
        threads = options.threads if options.threads is not None else get_settings().python_threads
        if str(package.directory) not in sys.path:
            sys.path.insert(0, str(package.directory))
        own: list[KnownCategories] = []  # the categories the model itself learnt, where it can say
        if entry.endswith(ESTIMATOR_SUFFIXES):
            self._call, own = _load_estimator(package, options)
        elif entry.endswith(ONNX_SUFFIX):
            from meshserve.adapters.python.onnx_model import OnnxModel

            self._call = OnnxModel(package, threads=threads)
            own = self._call.categories
        elif is_mlflow_model(package):
            from meshserve.adapters.python.mlflow_model import PyfuncModel

            self._call = _naming_refused_values(PyfuncModel(package), None)
        else:
            module_name, _, function_name = entry.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:  # the module is there; a library it imports is not
                    raise missing_dependency(package, f"{module_name}.py", exc) from exc
                raise
            function = getattr(module, function_name, None)
            if not callable(function):
                defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                                 and getattr(v, "__module__", None) == module.__name__)
                raise ManifestError(str(package.manifest_path), "entrypoint",
                                    f"{module_name} has no function {function_name}",
                                    "name a function the module defines"
                                    + (f": {', '.join(defined[:10])}" if defined else ""))
            self._call = _naming_refused_values(_callable_call(function, package.manifest.signature.outputs[0].name),
                                                None)
        self._categories = CategoryCheck(checked_categories(own, package))
        self._workers = PredictWorkers(threads, get_settings().python_abandoned_threads,
                                       _on_loop_below_s(package, options) if entry.endswith(ESTIMATOR_SUFFIXES) else 0.0,
                                       f"model {package.name} version {package.version}") \
            if threads else None

    async def predict(self, inputs: Tensors) -> Tensors:
        # Before the model: a category it never saw is the client's mistake, not the model's failure.
        if self._categories:
            self._categories.check(inputs)
        if self._workers is None:
            return self._call(inputs)
        return await self._workers.run(self._call, inputs, request_deadline.get(), rows_of(inputs))

    async def ready(self) -> bool:
        """False while abandoned calls hold every spare thread: new work would not start on time."""
        return self._workers is None or self._workers.ready()

    async def close(self) -> None:
        if self._workers is not None:
            self._workers.close()


def _on_loop_below_s(package: ModelPackage, options: PythonOptions) -> float:
    # Only an estimator: its time follows the rows it is given, where a function of the team's own
    # may sleep, wait on I/O or loop on some inputs only, and would hold the loop while it does.
    if options.on_loop_below_ms is not None:
        return options.on_loop_below_ms / 1000.0
    if package.manifest.batching.max_batch_size > 1:
        # Micro-batching pays the hand-off once per batch already, and needs the loop free while
        # a batch is scored to gather the next one (on the loop, batches of one row formed).
        return 0.0
    return get_settings().python_on_loop_below_ms / 1000.0


def _load_estimator(package: ModelPackage, options: PythonOptions) -> tuple[Callable[[Tensors], Tensors],
                                                                            list[KnownCategories]]:
    """The call scoring a joblib/skops estimator, and the categories its encoders learnt."""
    estimator = load_estimator(package)
    outputs = [o.name for o in package.manifest.signature.outputs]
    methods = options.methods or {outputs[0]: "predict"}
    for output, method in methods.items():
        if not callable(getattr(estimator, method, None)):
            raise missing_method(package, estimator, output, method)
    frame = check_estimator_inputs(estimator, package)
    columns = estimator_columns(package, frame)
    policy = package.manifest.input_policy
    call = _estimator_call(estimator, methods, [i.name for i in package.manifest.signature.inputs], frame,
                           checked_finite=policy.nan == "refuse" and policy.infinity == "refuse")
    return _naming_refused_values(call, columns), learnt_categories(estimator, columns)


def checked_categories(own: list[KnownCategories], package: ModelPackage) -> list[KnownCategories]:
    """The model's own categories, else model.yaml's, per column; a disagreement is logged, the model's win."""
    declared = declared_categories(package.manifest.signature)
    mine = {k.key: k for k in own}
    for entry in declared:
        learnt = mine.get(entry.key)
        unseen = [v for v in entry.values if learnt is not None and v not in learnt.values]
        if unseen:
            log.warning("model %s: column '%s' declares categories %s that %s never saw; requests using them are "
                        "refused", package.name, entry.column, ", ".join(map(repr, unseen)), learnt.source)
    return merged(own, declared)


def _callable_call(function: Callable[..., Any], only_output: str) -> Callable[[Tensors], Tensors]:
    def call(inputs: Tensors) -> Tensors:
        result = function(inputs)
        return result if isinstance(result, dict) else {only_output: result}
    return call


def _estimator_call(estimator: Any, methods: dict[str, str], input_names: list[str],
                    frame: FramePlan | None = None, checked_finite: bool = False) -> Callable[[Tensors], Tensors]:
    # Inputs already refused for NaN and infinity (check_values, model.yaml input_policy) need not be
    # scanned again by scikit-learn in every method called: for a one-row request that scan is a
    # large part of predict's own time.
    finite = _assume_finite() if checked_finite and frame is None else contextlib.nullcontext

    def call(inputs: Tensors) -> Tensors:
        if frame is not None:
            table = frame.frame(inputs)
            return {output: getattr(estimator, method)(table) for output, method in methods.items()}
        arrays = [inputs[name] for name in input_names]
        for name, array in zip(input_names, arrays):
            if array.ndim != 2:
                raise InvalidInput(name, f"an estimator takes 2-D input (rows x features), got {array.ndim}-D")
        features = arrays[0] if len(arrays) == 1 else np.hstack(arrays)
        with finite():
            return {output: getattr(estimator, method)(features) for output, method in methods.items()}

    return call


def _naming_refused_values(call: Callable[[Tensors], Tensors],
                           columns: list[Column] | None) -> Callable[[Tensors], Tensors]:
    """CALL, with a ValueError that names a value of the request (scikit-learn's unknown category) as InvalidInput."""
    def refusing(inputs: Tensors) -> Tensors:
        try:
            return call(inputs)
        except ValueError as exc:
            refusal = refused_value(exc, inputs, columns)
            if refusal is None:
                raise  # not about a value the request holds: the model's own failure, INTERNAL
            raise refusal from exc
    return refusing


def _assume_finite() -> Callable[[], contextlib.AbstractContextManager]:
    try:
        import sklearn
    except ImportError:
        return contextlib.nullcontext
    return lambda: sklearn.config_context(assume_finite=True)
