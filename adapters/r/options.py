"""The `r:` section of model.yaml (`ROptions`): which file holds the model, which R packages it
needs, which function scores it, and how the V2 inputs become the columns of R's data.frame;
with the R runtime's facts the rest of meshserve asks for (working slots, pod resources, what
`meshserve package` records).

Checking these options reads files only; `check_model` and capturing the environment start R
(on the process's R thread, session.py), imported when called.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, ClassVar

from pydantic import Field, model_validator

from meshserve.adapters.runtime import ReplicaResources, RuntimeOptions
from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage
from meshserve.core.strict_model import repeated

from .columns import ColumnPlan, NanPolicy, RColumn


class ROptions(RuntimeOptions):
    """The `r:` section of model.yaml."""

    resources: ClassVar[ReplicaResources] = ReplicaResources(memory="1Gi")  # one R per process, plus its packages

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

    def working_slots(self) -> int:
        return max(1, self.workers)  # 0 workers: the adapter's own R thread

    def capture_environment(self, package: ModelPackage) -> dict[str, Any]:
        """R's version and the version of every package loaded once the model is ready to score."""
        from .environment import capture_loaded_environment
        from .session import r_session

        return r_session().call_blocking(capture_loaded_environment, package, self)

    @classmethod
    def describe_environment(cls, recorded: dict[str, Any]) -> str:
        return f"R {recorded.get('version')} with {len(recorded.get('packages', {}))} packages loaded"

    def check_package(self, package: ModelPackage) -> None:
        """Files exist and every column fits an input; raises ManifestError naming the field."""
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
