"""Factors a formula makes from an input column, such as `factor(cyl)` in `glm(am ~ factor(cyl) + wt)`.

Such a model keeps its levels under the term (`model$xlevels[["factor(cyl)"]]` is "4", "6", "8"),
not under the column `cyl` that newdata holds, so a check that looks levels up by column name
finds none: a declaration that leaves out "8" passed, every cyl=8 request was then refused, and
an unseen number reached R and came back as INTERNAL `factor factor(cyl) has new level 0`.
Here each such term is mapped back to its column, and that column is checked against the term's
levels in whatever type it is declared: as a factor, as text, or as a number (a client sends
cyl=8 as a number; the values must be among the levels, compared as numbers as R's
`as.character()` would label them).

R's `model.frame(..., xlev = model$xlevels)` matches these levels by label, so their declared
order does not matter; the R factor is built on the model's own levels all the same.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from meshserve.core.errors import ManifestError

from .level_check import GUIDE, StoredColumn, checked_levels, yaml_list

if TYPE_CHECKING:
    from .columns import ColumnSource

# A call that turns one column into a factor whose labels are the column's values, and nothing else:
# factor(cyl), as.factor(cyl), ordered(`my col`). With labels= or cut() the labels are not the values.
_FACTOR_CALL = re.compile(r"^\s*(?:factor|as\.factor|ordered|as\.ordered)\(\s*(`[^`]+`|[A-Za-z.][A-Za-z0-9._]*)\s*\)\s*$")


def term_variable(term: str) -> str | None:
    """The column a factor term such as `factor(cyl)` is made from; None for any other term."""
    match = _FACTOR_CALL.match(term)
    return match.group(1).strip("`") if match else None


def formula_factor_terms(names, needed) -> tuple[dict[str, str], tuple[str, ...]]:
    """({column: term} for the terms made from one column, the other factor terms read from newdata).

    NAMES are the stored variables that carry levels; a name that newdata itself holds (NEEDED)
    is a column, not a term."""
    terms: dict[str, str] = {}
    other: list[str] = []
    for name in names:
        if name in needed:
            continue
        variable = term_variable(name)
        if variable is not None:
            terms.setdefault(variable, name)
        elif any(ch in name for ch in "()"):  # a call of another kind (interaction(), cut(), ...)
            other.append(name)
    return terms, tuple(other)


def check_term_column(source: "ColumnSource", term: str, known: StoredColumn, path: str, field: str,
                      model: str) -> "ColumnSource":
    """SOURCE checked against the levels of TERM, which the model makes from it; ManifestError on a mismatch."""
    from .columns import FACTOR_TYPES

    stored = known.levels or ()
    if source.r_type in FACTOR_TYPES:
        # model.frame() matches the term's levels by label: only the set must agree.
        return replace(source, r_levels=checked_levels(source, replace(known, by_label=True), path, field, model,
                                                        term=term))
    if source.r_type == "character":
        return replace(source, r_levels=stored)
    if source.r_type in ("numeric", "integer"):
        if not all(_is_number(level) for level in stored):
            raise ManifestError(path, f"{field}.type",
                                f"column '{source.name}' is declared {source.r_type}, but the model turns it into "
                                f"{term} with levels [{yaml_list(stored)}] ({known.source}), which are not numbers",
                                f"declare it as {{name: {source.name}, type: factor, levels: [{yaml_list(stored)}]}} "
                                f"(see {GUIDE})")
        return replace(source, term=term, term_levels=stored)
    if not set(stored) <= {"FALSE", "TRUE"}:  # logical: factor(TRUE) is labelled "TRUE"
        raise ManifestError(path, f"{field}.type",
                            f"column '{source.name}' is declared logical, but the model turns it into {term} with "
                            f"levels [{yaml_list(stored)}] ({known.source})",
                            f"declare it as {{name: {source.name}, type: factor, levels: [{yaml_list(stored)}]}} "
                            f"(see {GUIDE})")
    return source


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
