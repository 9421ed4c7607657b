"""The categories a Python model learnt at training, read once at load, and its refusals of others.

A scikit-learn `OneHotEncoder` or `OrdinalEncoder` fitted with `handle_unknown='error'` (the
default) raises ValueError for a category it never saw, which would reach the client as
INTERNAL. So at load the encoders are found (the model itself, the first steps of a
`Pipeline`, the transformers of a `ColumnTransformer`, nested) and each encoded column is tied
back to the input and feature that feeds it; the runtime then refuses unknown values before
predict (meshserve/core/category_check.py). An ONNX graph keeps the same lists in its
`ai.onnx.ml.OneHotEncoder` nodes.

What no check anticipated is read from the error: a scikit-learn ValueError about an unknown
category or an unreadable number becomes INVALID_ARGUMENT only when the value it names is in the
request, so a genuine bug in the model (a ValueError about anything else) stays INTERNAL.
"""

from __future__ import annotations

import ast
import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from meshserve.core.category_check import KnownCategories, as_text, column_values
from meshserve.core.errors import InvalidInput, quoted
from meshserve.core.model_package import ModelPackage

log = logging.getLogger("meshserve.adapters.python")

ENCODERS = ("OneHotEncoder", "OrdinalEncoder")
# Steps that may come before an encoder without changing which values it sees.
TRANSPARENT_STEPS = ("SimpleImputer", "FunctionTransformer")


@dataclass(frozen=True)
class Column:
    """One column the estimator receives, and where the request holds it."""

    name: str
    input: str
    index: int | None


def estimator_columns(package: ModelPackage, frame) -> list[Column] | None:
    """The estimator's input columns in order: the DataFrame plan's, or the joined 2-D inputs'."""
    if frame is not None:
        return [Column(c.name, c.input, c.index) for c in frame.columns]
    columns = []
    for spec in package.manifest.signature.inputs:
        if len(spec.shape) != 2 or spec.shape[1] == -1:
            return None  # positions cannot be tied to inputs
        for j in range(spec.shape[1]):
            name = spec.features[j] if spec.features else (spec.name if spec.shape[1] == 1 else f"{spec.name}[{j}]")
            columns.append(Column(name, spec.name, j))
    return columns


def learnt_categories(estimator: Any, columns: list[Column] | None) -> list[KnownCategories]:
    """The categories each encoder inside ESTIMATOR learnt, per request column it encodes."""
    if columns is None:
        return []
    found = []
    for encoder, encoded, where in _encoders(estimator, columns, type(estimator).__name__):
        closed = getattr(encoder, "handle_unknown", "error") == "error"
        for column, categories in zip(encoded, getattr(encoder, "categories_", ())):
            values = _plain(categories)
            if values:
                found.append(KnownCategories(column.input, column.index, column.name, values,
                                             f"{type(encoder).__name__} {where}", closed))
    return found


def _encoders(step: Any, columns: list[Column], where: str) -> Iterator[tuple[Any, list[Column], str]]:
    kind = type(step).__name__
    if kind in ENCODERS:
        yield step, columns, f"'{where}'"
    elif kind == "Pipeline":
        for name, inner in step.steps:
            if inner in (None, "passthrough"):
                continue
            yield from _encoders(inner, columns, name)
            if type(inner).__name__ not in TRANSPARENT_STEPS:
                break  # later steps see transformed columns, not the request's
    elif kind == "ColumnTransformer":
        indices = getattr(step, "_transformer_to_input_indices", None) or {}
        for name, inner, selected in getattr(step, "transformers_", ()):
            if inner in ("drop", "passthrough"):
                continue
            positions = indices.get(name)
            if positions is None:
                positions = _positions(selected, columns)
            if positions is not None and all(0 <= p < len(columns) for p in positions):
                yield from _encoders(inner, [columns[p] for p in positions], name)


def _positions(selected: Any, columns: list[Column]) -> list[int] | None:
    names = [c.name for c in columns]
    items = selected if isinstance(selected, (list, tuple, np.ndarray)) else [selected]
    positions = []
    for item in items:
        if isinstance(item, str) and item in names:
            positions.append(names.index(item))
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            positions.append(int(item))
        else:
            return None
    return positions


def _plain(categories: Any) -> tuple:
    values = []
    for value in list(categories):
        if isinstance(value, (str, bytes)):
            values.append(as_text(value))
        elif isinstance(value, (int, float, np.integer, np.floating)) and not math.isnan(float(value)):
            values.append(float(value))
    kinds = {isinstance(v, str) for v in values}
    return tuple(values) if len(kinds) == 1 else ()


def onnx_categories(package: ModelPackage) -> list[KnownCategories]:
    """Categories of the graph's OneHotEncoder nodes fed by one column of a graph input (zeros=0: others fail)."""
    try:
        import onnx
        from onnx import helper

        graph = onnx.load(str(package.path(package.manifest.entrypoint)), load_external_data=False).graph
    except Exception as exc:  # reading categories is a courtesy; the model still serves without it
        log.debug("%s: ONNX graph not read for categories: %s", package.manifest_path, exc)
        return []
    specs = {s.name: s for s in package.manifest.signature.inputs}
    sources = _onnx_columns(graph, specs)
    found = []
    for node in graph.node:
        where = sources.get(node.input[0]) if node.op_type == "OneHotEncoder" and node.input else None
        if where is None:
            continue
        spec, index = specs[where[0]], where[1]
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        values = tuple(as_text(v) for v in attributes.get("cats_strings", ())) or tuple(
            float(v) for v in attributes.get("cats_int64s", ()))
        position = None if len(spec.shape) < 2 else (index or 0)
        column = spec.features[position] if spec.features and position is not None else spec.name
        found.append(KnownCategories(spec.name, position, column, values,
                                     f"ONNX OneHotEncoder '{node.name or node.output[0]}'",
                                     closed=attributes.get("zeros", 1) == 0))
    return found


def _onnx_columns(graph: Any, specs: dict) -> dict[str, tuple[str, int | None]]:
    """Graph values that hold one column of a graph input, as (input, column): the input itself when
    it has one column, a Gather of one constant column (skl2onnx's ColumnTransformer), and what
    Identity, Cast or Reshape pass on."""
    from onnx import numpy_helper

    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    sources: dict[str, tuple[str, int | None]] = {
        name: (name, None) for name, spec in specs.items() if len(spec.shape) < 2 or spec.shape[1] == 1}
    for node in graph.node:
        if not node.input or not node.output:
            continue
        if node.op_type in ("Identity", "Cast", "Reshape") and node.input[0] in sources:
            sources[node.output[0]] = sources[node.input[0]]
        elif node.op_type == "Gather" and node.input[0] in specs and len(node.input) > 1:
            indices = constants.get(node.input[1])
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            if indices is not None and indices.size == 1 and axis == 1:
                sources[node.output[0]] = (node.input[0], int(indices.reshape(-1)[0]))
    return sources


# scikit-learn's words for a value it cannot take: the value(s) are group 1.
_REFUSALS = (
    (re.compile(r"Found unknown categories (\[.*?\]) in column \d+ during (?:transform|fit)"), "unknown category"),
    (re.compile(r"y contains previously unseen labels: (\[.*?\]|'.*?')"), "unknown category"),
    (re.compile(r"could not convert string to float: ('.*?')"), "not a number"),
)


def refused_value(exc: ValueError, inputs: dict[str, np.ndarray], columns: list[Column] | None) -> InvalidInput | None:
    """INVALID_ARGUMENT for a ValueError naming a value the request holds; None when it names none."""
    message = str(exc)
    for pattern, what in _REFUSALS:
        match = pattern.search(message)
        if match is None:
            continue
        for value in _values(match.group(1)):
            where = _find(value, inputs, columns)
            if where is not None:
                column, row = where
                return InvalidInput(column.input, f"column '{quoted(column.name)}' row {row}: {what} "
                                                  f"'{quoted(value)}' (the model: {message})")
    return None


def _values(text: str) -> list[str]:
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    return [as_text(v) for v in (parsed if isinstance(parsed, (list, tuple)) else [parsed])]


def _find(value: str, inputs: dict[str, np.ndarray], columns: list[Column] | None):
    candidates = columns or [Column(name if a.ndim < 2 else f"{name}[{j}]", name, None if a.ndim < 2 else j)
                             for name, a in inputs.items() for j in range(a.shape[1] if a.ndim == 2 else 1)]
    for column in candidates:
        array = inputs.get(column.input)
        if array is None or array.dtype.kind not in "OSU":
            continue
        for row, held in enumerate(column_values(array, column.index)):
            if as_text(held) == value:
                return column, row
    return None
