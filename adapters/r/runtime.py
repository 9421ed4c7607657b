"""The R runtime: serve an R team's saved model (an .rds) and their predict function via rpy2.

The `r:` section of model.yaml (validated by `ROptions`) says which file holds the model,
which R packages it needs, which function scores it, and how the V2 inputs become the
columns of the data.frame R's predict expects (name, type, factor levels, missing values).

Requests are checked in Python against those column types before R sees them (R models
often return wrong numbers rather than an error for a wrongly typed column), packed into
one numpy matrix per R type, and scored on the process's single R thread (r_session.py), or
by R worker processes forked after the model loads (r_workers.py, `r.workers: N`).
Importing this module does not start R; `load()` does.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any, Literal

from pydantic import Field, model_validator

from meshserve.core.errors import InvalidInput, ManifestError, MeshError, ModelFailed, ModelUnavailable
from meshserve.core.model_package import ModelPackage

from meshserve.adapters.runtime import Runtime, RuntimeOptions, Tensors
from meshserve.core.strict_model import StrictModel, repeated

log = logging.getLogger("meshserve.adapters.r")

RColumnType = Literal["numeric", "integer", "factor", "ordered", "character", "logical"]
NanPolicy = Literal["reject", "na"]


class RColumn(StrictModel):
    """One column of the data.frame handed to R, and where its values come from."""

    name: str = Field(min_length=1, description="Column name in R (what the model was trained with).")
    type: RColumnType = Field(description="R type the column must have.")
    input: str | None = Field(
        default=None,
        description="V2 input holding the values. Default: the input listing `feature` among its "
        "features, else the input named like the column.",
    )
    feature: str | None = Field(
        default=None, description="Feature name inside that input, when it differs from `name`."
    )
    levels: list[str] | None = Field(
        default=None,
        description="Levels in the order used at training (factor and ordered columns only); checked at load "
        "against the levels the model stored.",
    )
    nan: NanPolicy | None = Field(
        default=None, description="Missing values (NaN) in this column: reject, or pass to R as NA."
    )

    @model_validator(mode="after")
    def _levels_only_for_factors(self) -> "RColumn":
        if self.type in ("factor", "ordered") and not self.levels:
            raise ValueError(f"{self.type} column '{self.name}' needs its levels (the order used at training; "
                             "`levels(training_data$" + self.name + ")` in R prints them)")
        if self.type not in ("factor", "ordered") and self.levels is not None:
            raise ValueError(f"column '{self.name}' is {self.type}; only factor and ordered columns take levels")
        if self.levels is not None and len(set(self.levels)) != len(self.levels):
            raise ValueError(f"{self.type} column '{self.name}' repeats a level")
        return self


class ROptions(RuntimeOptions):
    """The `r:` section of model.yaml."""

    model: str = Field(default="model.rds", description="The saved model (saveRDS) inside the package.")
    packages: list[str] = Field(
        default_factory=list, description="R packages to attach before reading the model (e.g. randomForest)."
    )
    predict_file: str | None = Field(
        default=None, description="R file in the package defining the predict function."
    )
    predict_function: str | None = Field(
        default=None,
        description="function(model, newdata) returning a vector, matrix or data.frame. "
        "Default: R's generic predict().",
    )
    predict_args: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Extra named arguments for the predict call, e.g. {type: prob}."
    )
    columns: list[RColumn] = Field(
        default_factory=list,
        description="V2 inputs -> R columns, in the data.frame's order. Empty: one column per feature "
        "of each input, typed from its datatype.",
    )
    outputs: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="V2 output -> the result column(s) it takes. Default: the output's features, "
        "else the column named like the output, else the whole result.",
    )
    nan: NanPolicy = Field(default="reject", description="Default NaN policy of numeric columns.")
    workers: int = Field(
        default=0, ge=0, le=64,
        description="0: score on the adapter's own R thread. N: fork N R worker processes after the model "
        "loads; N requests score at once, and an R crash costs one request, not the adapter.",
    )
    strict_environment: bool = Field(
        default=False,
        description="Refuse to load when the running R or package versions differ from the recorded ones.",
    )

    @model_validator(mode="after")
    def _function_needs_a_home(self) -> "ROptions":
        if self.predict_file and not self.predict_function:
            raise ValueError("predict_file is set; also name the function in it (predict_function)")
        dupes = repeated(c.name for c in self.columns)
        if dupes:
            raise ValueError(f"R column names must be unique; repeated: {', '.join(dupes)}")
        return self

    def check_package(self, package: ModelPackage) -> None:
        """Files exist and every column fits an input; raises ManifestError naming the field."""
        from .columns import ColumnPlan

        path = str(package.manifest_path)
        if not package.path(self.model).is_file():
            raise ManifestError(path, "r.model", f"{self.model} is not in the package",
                                f"save the model into the package folder with saveRDS(model, \"{self.model}\") "
                                "(scripts/setup.sh trains the examples), or set r.model to the file's name (see "
                                "docs/r-guide.md, section '2. Write the model package')")
        if self.predict_file and not package.path(self.predict_file).is_file():
            raise ManifestError(path, "r.predict_file", f"{self.predict_file} is not in the package",
                                "add the R file to the package folder or correct its name (see docs/r-guide.md, "
                                "section 'Your scoring function')")
        ColumnPlan.build(self, package)  # raises ManifestError for a column that fits no input
        _check_nan_reaches_r(self, package)
        for output in self.outputs:
            if package.manifest.signature.output(output) is None:
                raise ManifestError(path, f"r.outputs.{output}", "no output of that name in the signature",
                                    "map only declared outputs")


    def check_model(self, package: ModelPackage) -> None:
        """Load the model in R as serving would: packages, the .rds, the predict function and its
        arguments, and factor levels against the model's own; raises ManifestError."""
        from .columns import ColumnPlan
        from .model import RModel
        from .session import r_session

        def load_and_release() -> tuple[str, ...]:
            model = RModel.load(package, self, ColumnPlan.build(self, package))
            model.release()
            return model.plan.unchecked_levels

        with r_set_up_problems(package):
            unchecked = r_session().call_blocking(load_and_release)
        if unchecked:
            print(unchecked_levels_report(package, unchecked), file=sys.stderr, flush=True)


def unchecked_levels_report(package: ModelPackage, unchecked: tuple[str, ...]) -> str:
    """What `meshserve check` says where the model's levels could not be read: only scoring real rows
    can show a wrong level order there (randomForest and ranger read factors by position)."""
    where = str(package.manifest_path)
    lines = [f"meshserve: {where}: could not compare these factor levels with the model's:"]
    lines += [f"  {line}" for line in unchecked]
    if package.manifest.golden:
        lines.append(f"  only the golden examples ({package.manifest.golden}) can show a wrong level or order here; "
                     "make sure they are real rows whose outputs you checked with R's own predict "
                     "(docs/model-package.md, 'Golden examples')")
    else:
        lines.append("  only golden examples can show a wrong level or order here: copy the levels from levels() of "
                     "the training data, then record real rows with `meshserve package DIR --golden-from FILE` and "
                     "check their outputs with R's own predict (docs/model-package.md, 'Golden examples'; "
                     "docs/r-guide.md, section 'Factor and ordered columns')")
    return "\n".join(lines)


@contextlib.contextmanager
def r_set_up_problems(package: ModelPackage):
    """R or rpy2 missing on this machine: one line saying how to set them up, not a traceback."""
    from .session import RStartError

    try:
        yield
    except (ImportError, RStartError) as exc:
        raise ManifestError(str(package.manifest_path), "runtime", f"R cannot run here ({exc})",
                            "install R and rpy2 with scripts/setup.sh (see docs/r-guide.md, section '1. Set up')"
                            ) from exc


def _check_nan_reaches_r(options: ROptions, package: ModelPackage) -> None:
    # `nan: na` only matters if NaN gets past the adapter's input_policy, which refuses it by default.
    if package.manifest.input_policy.nan == "allow":
        return
    signature = package.manifest.signature
    for index, column in enumerate(options.columns):
        policy = column.nan or options.nan
        if policy != "na":
            continue
        spec = signature.input(column.input) if column.input else None
        if spec is None:
            spec = next((s for s in signature.inputs if (s.features and (column.feature or column.name) in s.features)
                         or s.name == (column.feature or column.name)), None)
        if spec is not None and spec.datatype.startswith("FP"):
            field = f"r.columns[{index}].nan" if column.nan else "r.nan"
            raise ManifestError(str(package.manifest_path), field,
                                f"column '{column.name}' passes NaN to R as NA, but input_policy refuses NaN in "
                                f"input '{spec.name}' before R sees it",
                                "also set `input_policy: {nan: allow}` in model.yaml, or drop `nan: na` (see "
                                "docs/r-guide.md, section 'The r: section')")
    if options.nan == "na" and not options.columns and any(s.datatype.startswith("FP") for s in signature.inputs):
        raise ManifestError(str(package.manifest_path), "r.nan",
                            "r.nan is 'na', but input_policy refuses NaN before R sees it",
                            "also set `input_policy: {nan: allow}` in model.yaml, or drop `nan: na` (see "
                            "docs/r-guide.md, section 'The r: section')")


class RRuntime(Runtime):
    """One R model: scored on the process's R thread, or by forked R workers."""

    @classmethod
    def capture_environment(cls, package: ModelPackage) -> dict[str, Any]:
        return capture_environment(package)

    def __init__(self) -> None:
        self._model: Any = None  # r_model.RModel, created on the R thread
        self._plan: Any = None
        self._outputs: Any = None
        self._session: Any = None
        self._workers: Any = None  # r_workers.RWorkerPool when r.workers > 0

    async def load(self, package: ModelPackage) -> None:
        from .columns import ColumnPlan
        from .environment import check_environment
        from .model import RModel
        from .results import OutputPlan
        from .session import r_session

        self.package = package
        options: ROptions = package.options  # type: ignore[assignment]
        self._plan = ColumnPlan.build(options, package)
        self._outputs = OutputPlan(package.manifest.signature.outputs, options.outputs)
        self._session = r_session()
        with r_set_up_problems(package):
            # Check versions first: under strict there is no point loading a model that is refused.
            for warning in await self._session.call(check_environment, package, options):
                log.warning("%s", warning)
            self._model = await self._session.call(RModel.load, package, options, self._plan)
        self._plan = self._model.plan  # factors on the model's own levels
        if options.workers:
            from .workers import RWorkerPool

            self._workers = RWorkerPool(self._session, self._model, options.workers)
            await self._workers.start()

    async def predict(self, inputs: Tensors) -> Tensors:
        if self._model is None:
            raise ModelUnavailable(f"R model {self.package.name} is not loaded")
        frame_parts = self._plan.pack(inputs)  # InvalidInput before R sees anything
        if frame_parts.rows == 0:
            return self._outputs.empty()
        try:
            if self._workers is not None:
                columns = await self._workers.score(frame_parts)
            else:
                columns = await self._session.call(self._model.score, frame_parts)
        except MeshError:
            raise
        except Exception as exc:
            raise _r_error(exc, self.package, self._model.facts) from exc
        return self._outputs.to_tensors(columns, frame_parts.rows)

    async def ready(self) -> bool:
        return self._model is not None

    async def close(self) -> None:
        if self._workers is not None:
            workers, self._workers = self._workers, None
            await workers.close()
        if self._model is not None:
            model, self._model = self._model, None
            await self._session.call(model.release)


def _r_error(exc: Exception, package: ModelPackage, facts: Any) -> MeshError:
    """R's own message, without rpy2's wrapping: INVALID_ARGUMENT where the model's code said the
    input is at fault (an `invalid_input` condition), INTERNAL otherwise, followed by the
    model.yaml fix when the package is at fault (predict_errors.py)."""
    from .model import INVALID_INPUT_MARK
    from .predict_errors import package_hint

    message = str(exc).strip()
    if INVALID_INPUT_MARK in message:
        return InvalidInput(None, message.split(INVALID_INPUT_MARK, 1)[1].strip())
    for prefix in ("Error in ", "Error: "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    hint = package_hint(message, package, facts)
    return ModelFailed(f"R error: {message}" + (f"; {hint}" if hint else ""))


def capture_environment(package: ModelPackage) -> dict[str, Any]:
    """R version and the version of every package loaded once the model is ready to score."""
    from .environment import capture_loaded_environment
    from .session import r_session

    return r_session().call_blocking(capture_loaded_environment, package, package.options)

