"""V2 input tensors -> the columns of R's data.frame, checked against the declared R types.

`RColumn` is one column as model.yaml declares it (an entry of `r.columns`). `ColumnPlan.build` resolves, once at load, where each R column's values come from (an input
and a column index inside it). `ColumnPlan.pack` checks a request against the declared types
and packs it into at most four numpy matrices, one per R storage type (double, integer,
logical, character); R assembles the data.frame from them (r_model.py). Few large conversions
are much cheaper across rpy2 than one per column or a pandas frame.

Every rejection is an `InvalidInput` naming the input and the R column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, model_validator

from meshserve.core.errors import InvalidInput, ManifestError, quoted
from meshserve.core.model_package import ModelPackage, TensorSpec
from meshserve.core.strict_model import StrictModel

if TYPE_CHECKING:  # the options build their plan from this module
    from .options import ROptions

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


# R storage matrices a column lands in; factors travel as integer codes.
STORAGE = {"numeric": "num", "integer": "int", "factor": "int", "ordered": "int", "logical": "lgl", "character": "chr"}
FACTOR_TYPES = ("factor", "ordered")

_NUMBER_TYPES = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_INT_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
# Which V2 datatypes can feed which R type (BYTES holding text is parsed and checked).
ACCEPTED_DATATYPES = {
    "numeric": _NUMBER_TYPES | {"BYTES"},
    "integer": _NUMBER_TYPES | {"BYTES"},
    "logical": {"BOOL", "BYTES"} | _INT_TYPES,
    "factor": {"BYTES"} | _NUMBER_TYPES,  # numbers only where every level reads as a number
    "ordered": {"BYTES"} | _NUMBER_TYPES,
    "character": {"BYTES"},
}
_INFERRED_TYPE = {"BOOL": "logical", "BYTES": "character"} | {t: "integer" for t in _INT_TYPES} | {
    t: "numeric" for t in ("FP16", "FP32", "FP64")
}
R_NA_INTEGER = np.iinfo(np.int32).min  # R's NA_integer_; no valid value may take it
_TRUE_TEXT = {"TRUE", "true", "True", "T", "1"}
_FALSE_TEXT = {"FALSE", "false", "False", "F", "0"}


@dataclass(frozen=True)
class ColumnSource:
    name: str
    r_type: str
    input: str
    index: int | None  # column inside a 2-D input; None: the whole (1-D or single-column) input
    levels: tuple[str, ...] | None  # as declared in model.yaml
    allow_nan: bool
    storage: str
    slot: int  # 1-based column in its storage matrix, as R indexes it
    # The levels of the R factor: the model's own where it stored them (levels.py), else the declared.
    r_levels: tuple[str, ...] | None = None
    # A number column the model turns into a factor (the term, e.g. factor(cyl)): its values must be among
    # the term's levels, or R fails the whole request with "factor factor(cyl) has new level 0".
    term: str | None = None
    term_levels: tuple[str, ...] | None = None

    @property
    def factor_levels(self) -> tuple[str, ...] | None:
        return self.r_levels or self.levels


@dataclass
class FrameParts:
    """One request, packed for R: row count and one matrix per storage type (None when unused)."""

    rows: int
    num: np.ndarray | None
    int: np.ndarray | None
    lgl: np.ndarray | None
    chr: np.ndarray | None


class ColumnPlan:
    def __init__(self, sources: list[ColumnSource], unchecked_levels: tuple[str, ...] = ()):
        self.sources = sources
        # What the model's levels could not be compared with (levels.py); `meshserve check` prints it.
        self.unchecked_levels = unchecked_levels
        self.width = {s: sum(1 for c in sources if c.storage == s) for s in ("num", "int", "lgl", "chr")}
        self.inputs = sorted({c.input for c in sources})

    @classmethod
    def build(cls, options: "ROptions", package: ModelPackage) -> "ColumnPlan":
        signature = package.manifest.signature
        path = str(package.manifest_path)
        columns = list(options.columns) or [
            RColumn(name=name, type=_INFERRED_TYPE[spec.datatype], input=spec.name, feature=name)
            for spec in signature.inputs
            for name in (spec.features or [spec.name])
        ]
        counters = {s: 0 for s in ("num", "int", "lgl", "chr")}
        sources = []
        for i, column in enumerate(columns):
            field = f"r.columns[{i}]" if options.columns else "r.columns"
            spec, index = _locate(column, signature.inputs, path, field)
            if spec.datatype not in ACCEPTED_DATATYPES[column.type]:
                raise ManifestError(
                    path, f"{field}.type",
                    f"column '{column.name}' is {column.type} but input '{spec.name}' is {spec.datatype}",
                    f"declare input '{spec.name}' as one of {', '.join(sorted(ACCEPTED_DATATYPES[column.type]))} ({_WHERE_FROM})",
                )
            if column.type in FACTOR_TYPES and spec.datatype != "BYTES":
                _check_number_levels(column, spec, path, field)
            storage = STORAGE[column.type]
            counters[storage] += 1
            sources.append(ColumnSource(
                name=column.name, r_type=column.type, input=spec.name, index=index,
                levels=tuple(column.levels) if column.levels else None,
                allow_nan=(column.nan or options.nan) == "na",
                storage=storage, slot=counters[storage],
            ))
        return cls(sources)

    def pack(self, inputs: dict[str, np.ndarray]) -> FrameParts:
        rows = self._row_count(inputs)
        columns: dict[str, list[np.ndarray]] = {s: [] for s in self.width}
        for source in self.sources:  # sources are in slot order within each storage type
            values = inputs[source.input]
            if source.index is not None:
                values = values[:, source.index]
            elif values.ndim == 2:
                values = values[:, 0]
            converted = _CONVERT[source.r_type](source, values)
            if source.term_levels is not None:
                _check_among_term_levels(source, converted)
            columns[source.storage].append(converted)
        return FrameParts(rows=rows, **{
            s: (np.column_stack(cols).astype(_STORAGE_DTYPE[s], copy=False) if cols else None)
            for s, cols in columns.items()
        })

    def _row_count(self, inputs: dict[str, np.ndarray]) -> int:
        rows = None
        first = None
        for name in self.inputs:
            if name not in inputs:
                raise InvalidInput(name, "missing; the R model needs it")
            n = inputs[name].shape[0] if inputs[name].ndim else 1
            if rows is None:
                rows, first = n, name
            elif n != rows:
                raise InvalidInput(name, f"has {n} rows but input '{first}' has {rows}; every input needs one row per case")
        return rows or 0


_WHERE_FROM = "see docs/r-guide.md, section 'The r: section'"


def _check_number_levels(column: "RColumn", spec: TensorSpec, path: str, field: str) -> None:
    # A number can only name a level that reads as that number (cyl = 8 for level "8").
    words = [level for level in column.levels or () if not _reads_as_number(level)]
    if words:
        raise ManifestError(path, f"{field}.type",
                            f"column '{column.name}' is {column.type} but input '{spec.name}' is {spec.datatype}, "
                            f"and a number cannot name its level(s) {', '.join(repr(w) for w in words)}",
                            f"declare input '{spec.name}' as BYTES and send the levels as text ({_WHERE_FROM})")


def _reads_as_number(text: str) -> bool:
    try:
        return np.isfinite(float(text))
    except ValueError:
        return False
_STORAGE_DTYPE = {"num": np.float64, "int": np.int32, "lgl": np.bool_, "chr": np.str_}  # str_: sized to fit


def _locate(column: "RColumn", inputs: list[TensorSpec], path: str, field: str) -> tuple[TensorSpec, int | None]:
    feature = column.feature or column.name
    if column.input is not None:
        spec = next((s for s in inputs if s.name == column.input), None)
        if spec is None:
            raise ManifestError(path, f"{field}.input", f"no input named '{column.input}' in the signature",
                                f"use the name of a declared input ({_WHERE_FROM})")
    else:
        spec = next((s for s in inputs if s.features and feature in s.features), None) or next(
            (s for s in inputs if s.name == feature), None)
        if spec is None:
            raise ManifestError(path, field, f"column '{column.name}' is in no input's features and no input has its name",
                                f"set `input:` (and `feature:`) for the column ({_WHERE_FROM})")
    if len(spec.shape) not in (1, 2):
        raise ManifestError(path, field, f"input '{spec.name}' has shape {spec.shape}; R columns come from 1-D or 2-D inputs",
                            f"declare the input as [-1] (one column) or [-1, k] (k columns) ({_WHERE_FROM})")
    if spec.features and feature in spec.features:
        return spec, (spec.features.index(feature) if len(spec.shape) == 2 else None)
    if len(spec.shape) == 1 or spec.shape[-1] == 1:
        return spec, None
    raise ManifestError(path, field, f"input '{spec.name}' has several columns and none is named '{feature}'",
                        f"list the input's `features` or set `feature:` for column '{column.name}' ({_WHERE_FROM})")


def _text(source: ColumnSource, values: np.ndarray) -> np.ndarray:
    try:
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values], dtype=np.str_)
    except UnicodeDecodeError as exc:
        raise InvalidInput(source.input, f"column '{source.name}': not UTF-8 text ({exc.reason})") from None


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _numbers(source: ColumnSource, values: np.ndarray) -> np.ndarray:
    if values.dtype == object:  # BYTES holding numbers as text
        text = _text(source, values)
        out = np.empty(len(text), dtype=np.float64)
        for i, t in enumerate(text):
            if t in ("", "NA") and source.allow_nan:
                out[i] = np.nan
                continue
            try:
                out[i] = float(t)
            except ValueError:
                raise InvalidInput(source.input, f"column '{source.name}' is {source.r_type}; row {i} holds "
                                                 f"'{t}', which is not a number") from None
        values = out
    return values.astype(np.float64, copy=False)


def _numeric(source: ColumnSource, values: np.ndarray) -> np.ndarray:
    out = _numbers(source, values)
    if not source.allow_nan:
        missing = np.isnan(out)
        if missing.any():
            raise InvalidInput(source.input, f"column '{source.name}' row {_first_bad(missing)} is NaN; "
                                             "this model does not accept missing values (r.nan: reject)")
    return out


def _integer(source: ColumnSource, values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "iu":
        bad = (values < -(2**31 - 1)) | (values > 2**31 - 1)
        if bad.any():
            raise InvalidInput(source.input, f"column '{source.name}' row {_first_bad(bad)} holds {values[bad][0]}, "
                                             "outside R's integer range")
        return values.astype(np.int32)
    numbers = _numeric(source, values)
    missing = np.isnan(numbers)
    whole = np.where(missing, 0.0, numbers)
    bad = (whole != np.round(whole)) | (np.abs(whole) > 2**31 - 1)
    if bad.any():
        raise InvalidInput(source.input, f"column '{source.name}' is integer; row {_first_bad(bad)} holds "
                                         f"{numbers[bad][0].item()!r}")
    out = whole.astype(np.int32)
    out[missing] = R_NA_INTEGER
    return out


def _logical(source: ColumnSource, values: np.ndarray) -> np.ndarray:
    if values.dtype == np.bool_:
        return values
    if values.dtype == object:
        text = _text(source, values)
        out = np.empty(len(text), dtype=np.bool_)
        for i, t in enumerate(text):
            if t in _TRUE_TEXT:
                out[i] = True
            elif t in _FALSE_TEXT:
                out[i] = False
            else:
                raise InvalidInput(source.input, f"column '{source.name}' is logical; row {i} holds '{t}' "
                                                 "(use TRUE/FALSE)")
        return out
    bad = (values != 0) & (values != 1)
    if bad.any():
        raise InvalidInput(source.input, f"column '{source.name}' is logical; row {_first_bad(bad)} holds "
                                         f"{values[bad][0]} (use 0 or 1)")
    return values.astype(np.bool_)


def _factor(source: ColumnSource, values: np.ndarray) -> np.ndarray:
    known = source.factor_levels
    codes = _level_codes(known)
    text = _text(source, values) if values.dtype == object else _number_labels(source, values)
    out = np.empty(len(text), dtype=np.int32)
    for i, t in enumerate(text):
        code = codes.get(t)
        if code is None:
            if t in source.levels:
                raise InvalidInput(source.input, f"column '{source.name}' row {i}: level '{quoted(t)}' is declared "
                                                 f"in model.yaml but the model never saw it at training; the model "
                                                 f"knows {', '.join(known)}")
            raise InvalidInput(source.input, f"column '{source.name}' row {i}: unknown factor level '{quoted(t)}'; "
                                             f"levels are {', '.join(source.levels)}")
        out[i] = code
    return out


def _number_labels(source: ColumnSource, values: np.ndarray) -> np.ndarray:
    """Numbers sent for a factor whose levels are numbers, as the levels they name (8 -> "8")."""
    by_number = {float(level): level for level in source.levels}
    numbers = values.astype(np.float64, copy=False)
    labels = [by_number.get(float(v)) for v in numbers]
    if None in labels:
        i = labels.index(None)
        raise InvalidInput(source.input, f"column '{source.name}' row {i}: unknown factor level "
                                         f"{_shown(numbers[i])}; levels are {', '.join(source.levels)}")
    return np.array(labels, dtype=np.str_)


def _check_among_term_levels(source: ColumnSource, values: np.ndarray) -> None:
    allowed = np.array([float(level) for level in source.term_levels])
    numbers = values.astype(np.float64)
    missing = np.isnan(numbers) if values.dtype.kind == "f" else values == R_NA_INTEGER
    unseen = ~np.isin(numbers, allowed) & ~missing  # NA reaches R as NA, as `nan: na` asks
    if unseen.any():
        i = _first_bad(unseen)
        raise InvalidInput(source.input, f"column '{source.name}' row {i}: value {_shown(numbers[i])} is not a level "
                                         f"of {source.term}, which the model makes from it; the model knows "
                                         f"{', '.join(source.term_levels)}")


def _shown(number: float) -> str:
    return str(int(number)) if np.isfinite(number) and float(number).is_integer() else repr(float(number))


def _character(source: ColumnSource, values: np.ndarray) -> np.ndarray:
    text = _text(source, values)
    if source.r_levels is not None:  # the model turns this text into a factor of the values it was trained on
        unseen = ~np.isin(text, source.r_levels)
        if unseen.any():
            i = _first_bad(unseen)
            raise InvalidInput(source.input, f"column '{source.name}' row {i}: value '{quoted(text[i])}' was never "
                                             f"seen at training; the model knows {', '.join(source.r_levels)}")
    return text


_level_cache: dict[tuple[str, ...], dict[str, int]] = {}


def _level_codes(levels: tuple[str, ...]) -> dict[str, int]:
    codes = _level_cache.get(levels)
    if codes is None:
        codes = _level_cache[levels] = {level: i + 1 for i, level in enumerate(levels)}  # R codes from 1
    return codes


_CONVERT = {"numeric": _numeric, "integer": _integer, "logical": _logical, "factor": _factor, "ordered": _factor,
            "character": _character}
