"""Declared factor levels against the levels a model stored for one of its variables.

Shared by the check of plain columns (levels.py) and of columns a formula turns into a factor
term (formula_factors.py), which levels.py also calls: kept here, below both, so neither has to
import the other back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from meshserve.core.errors import ManifestError

log = logging.getLogger("meshserve.adapters.r")

GUIDE = "docs/r-guide.md, section 'Factor and ordered columns'"


@dataclass(frozen=True)
class StoredColumn:
    """What a model says about one of its variables."""

    kind: str  # R's data class, "" when the model does not say
    levels: tuple[str, ...] | None
    source: str  # where the levels were found
    by_label: bool  # the model matches levels by label: their order does not matter


def checked_levels(source, known: StoredColumn, path: str, field: str, model: str,
                   term: str | None = None) -> tuple[str, ...]:
    """The model's levels for SOURCE, a factor column; ManifestError when the declared ones leave one
    out or, where the model reads levels by position, declare them in another order."""
    stored = known.levels or ()
    declared = source.levels or ()
    missing = [level for level in stored if level not in declared]
    unseen = [level for level in declared if level not in stored]
    in_order = [level for level in declared if level in stored] == list(stored)
    if missing or not (in_order or known.by_label):
        made = f", which the model turns into {term}," if term else ""
        problem = (f"column '{source.name}'{made} declares levels [{yaml_list(declared)}] but the model stored "
                   f"[{yaml_list(stored)}] ({known.source}{f' {term!r}' if term else ''})")
        if missing:
            problem += f"; the model also knows {', '.join(repr(m) for m in missing)}"
            fix = (f"add the missing level{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}, "
                   f"or declare the column's levels as the model's: levels: [{yaml_list(stored)}] (see {GUIDE})")
        else:
            problem += ("; the order must be the training order (randomForest, for one, reads levels by "
                        "position and would answer wrongly)")
            fix = f"copy the stored levels in that order: levels: [{yaml_list(stored)}] (see {GUIDE})"
        raise ManifestError(path, f"{field}.levels", problem, fix)
    if unseen:
        log.warning("model %s: column '%s' declares level(s) %s that the model never saw; requests using them "
                    "are refused", model, source.name, ", ".join(repr(u) for u in unseen))
    return tuple(stored)


def yaml_list(levels) -> str:
    return ", ".join(_yaml_scalar(level) for level in levels or ())


def _yaml_scalar(text: str) -> str:
    import yaml

    return yaml.safe_dump(text, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
