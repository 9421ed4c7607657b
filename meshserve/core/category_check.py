"""Which values a categorical column may take, checked before the model sees them.

A model that one-hot encodes a text column refuses a category it never saw at training
(scikit-learn's `Found unknown categories ['central'] in column 0`), and that refusal is the
client's mistake, not the model's failure: it must come back INVALID_ARGUMENT naming the
input, the column, the row and the value, with the categories the model knows, exactly as an
R factor level it never saw does. The known categories come from two places: the model itself
(a runtime that can read them at load, such as a scikit-learn encoder's `categories_`), and
the signature's `limits: {COLUMN: {categories: [...]}}`; the model's own win where both say.

The check is one pass over each checked column of the request: linear in what the client sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meshserve.core.errors import InvalidInput, quoted
from meshserve.core.model_package import Signature

SHOWN = 20  # categories named in a refusal; a long list is cut so the status stays short


@dataclass(frozen=True)
class KnownCategories:
    """The values one column of one input may take."""

    input: str
    index: int | None  # position along the input's last axis; None: the whole (1-D) input
    column: str  # the name messages use: the feature's, or the input's own
    values: tuple  # str for a text column, numbers for a numeric one
    source: str  # where they were read, e.g. "OneHotEncoder 'onehot'" or "model.yaml limits"
    closed: bool = True  # other values are refused; False: the model takes them (a domain for made-up rows only)

    @property
    def key(self) -> tuple[str, int | None]:
        return self.input, self.index


def declared_categories(signature: Signature) -> list[KnownCategories]:
    """The categories model.yaml's limits declare, one entry per BYTES column that has them."""
    found = []
    for spec in signature.inputs:
        for column, limit in (spec.limits or {}).items():
            if limit.categories is None:
                continue
            if spec.features and column in spec.features:
                index = spec.features.index(column) if len(spec.shape) >= 2 else None
            else:
                index = 0 if len(spec.shape) == 2 else None
            found.append(KnownCategories(spec.name, index, column, tuple(limit.categories), "model.yaml limits"))
    return found


def merged(own: list[KnownCategories], declared: list[KnownCategories]) -> list[KnownCategories]:
    """The model's own categories, and the declared ones for columns the model says nothing about."""
    taken = {k.key for k in own}
    return list(own) + [d for d in declared if d.key not in taken]


class CategoryCheck:
    """Refuses a value outside a closed column's categories, naming input, column, row and value."""

    def __init__(self, known: list[KnownCategories]):
        self.known = [k for k in known if k.closed and k.values]
        self._allowed = [frozenset(k.values) for k in self.known]

    def __bool__(self) -> bool:
        return bool(self.known)

    def check(self, inputs: dict[str, np.ndarray]) -> None:
        for known, allowed in zip(self.known, self._allowed):
            array = inputs.get(known.input)
            if array is None:
                continue
            values = column_values(array, known.index)
            row = _first_unknown(values, allowed, text=isinstance(known.values[0], str))
            if row is not None:
                raise InvalidInput(known.input, unknown_category(known, row, values[row]))


def column_values(array: np.ndarray, index: int | None) -> np.ndarray:
    if array.ndim >= 2:
        return array[:, 0 if index is None else index]
    return array


def as_text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def unknown_category(known: KnownCategories, row: int, value) -> str:
    shown = ", ".join(str(v) for v in known.values[:SHOWN]) + (" ..." if len(known.values) > SHOWN else "")
    return (f"column '{quoted(known.column)}' row {row}: unknown category '{quoted(as_text(value))}'; "
            f"the model knows {shown} ({known.source})")


def _first_unknown(values: np.ndarray, allowed: frozenset, text: bool) -> int | None:
    if text:
        for row, value in enumerate(values):
            if as_text(value) not in allowed:
                return row
        return None
    if values.dtype.kind not in "biuf":
        return None  # text sent for a numeric column: the signature's datatype check answers that
    unknown = ~np.isin(values, np.array(sorted(allowed), dtype=np.float64))
    return int(np.argmax(unknown)) if unknown.any() else None
