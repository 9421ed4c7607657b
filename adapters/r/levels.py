"""The factor levels a model stored at training, compared with the levels model.yaml declares.

Some R models turn a factor into its integer codes and never look at the labels again:
randomForest maps a new data.frame's levels onto its own by position, so levels declared in
another order give wrong answers without any error, and an extra declared level makes every
request fail. So at load each factor (and ordered) column is checked against what the model
kept, where it keeps it:

- `xlevels` of lm, glm and most formula models, or the `xlevels` attribute (rpart);
- `forest$xlevels` of randomForest;
- `forest$covariate.levels` of ranger (ranger matches labels, and with
  `respect.unordered.factors = "order"` it re-sorts them by the response, so there only the
  set of levels must agree, not their order);
- the model frame a model keeps (`model$model`, lm's default);
- whether a column is a factor, an ordered factor or a number: the `dataClasses` of the
  model's `terms`.

A declared level the model never saw is allowed (requests that use it are refused, naming the
levels the model knows); the R factor is built with the model's own levels wherever they are
known, so such a declaration cannot disturb requests that use known levels.

Levels a formula keeps under a term made from a column (`factor(cyl)`) are checked in
formula_factors.py. Where a model keeps no levels for a factor column, nothing can be compared:
the plan says so (`unchecked_levels`) and `meshserve check` prints it.
"""

from __future__ import annotations

import logging
import dataclasses
from dataclasses import dataclass, replace
from typing import Any

from meshserve.core.errors import ManifestError

from .columns import FACTOR_TYPES, ColumnPlan
from .formula_factors import check_term_column, formula_factor_terms
from .level_check import GUIDE, StoredColumn, checked_levels, yaml_list

log = logging.getLogger("meshserve.adapters.r")


# function(holder) -> list(needed, names, kinds, sources, by_label, levels): the variables the
# model reads, then one entry per variable the model describes. kind: R's data class ("factor", "ordered", "numeric", ...) or "" when unknown;
# source: where the levels were found, "" when none; by_label: only the set of levels matters.
STORED_COLUMNS_R = r"""
function(holder) {
  model <- holder$model
  found <- list()
  note <- function(name, levels = NULL, source = "", by_label = FALSE, kind = "") {
    entry <- found[[name]]
    if (is.null(entry)) entry <- list(levels = NULL, source = "", by_label = FALSE, kind = "")
    if (is.null(entry$levels) && is.character(levels)) {
      entry$levels <- levels; entry$source <- source; entry$by_label <- by_label
    }
    if (!nzchar(entry$kind) && nzchar(kind)) entry$kind <- kind
    found[[name]] <<- entry
  }
  from_list <- function(xl, source, by_label = FALSE) {
    if (is.list(xl) && !is.null(names(xl)))
      for (name in names(xl)) if (nzchar(name)) note(name, xl[[name]], source, by_label)
  }
  if (is.list(model)) {
    from_list(model$xlevels, "xlevels")
    if (is.list(model$forest)) {
      from_list(model$forest$xlevels, "forest$xlevels")
      from_list(model$forest$covariate.levels, "forest$covariate.levels", by_label = TRUE)
    }
    if (is.data.frame(model$model))
      for (name in names(model$model)) if (is.factor(model$model[[name]]))
        note(name, levels(model$model[[name]]), "model frame")
  }
  from_list(attr(model, "xlevels"), "xlevels")
  terms <- if (is.list(model) && inherits(model$terms, "terms")) model$terms
           else tryCatch(stats::terms(model), error = function(e) NULL)
  classes <- attr(terms, "dataClasses")
  if (is.character(classes) && !is.null(names(classes)))
    for (name in names(classes)) note(name, kind = classes[[name]])
  # The variables predict() reads from newdata, where the model says.
  needed <- if (inherits(terms, "terms")) all.vars(stats::delete.response(terms))
            else if (is.list(model) && is.list(model$forest) && is.character(model$forest$independent.variable.names))
              model$forest$independent.variable.names
            else if (is.list(model) && is.list(model$forest) && is.list(model$forest$xlevels))
              names(model$forest$xlevels)
            else character(0)
  list(needed = needed,
       names = names(found),
       kinds = vapply(found, function(e) e$kind, ""),
       sources = vapply(found, function(e) e$source, ""),
       by_label = vapply(found, function(e) e$by_label, NA),
       levels = lapply(found, function(e) e$levels))
}
"""


@dataclass(frozen=True)
class StoredModel:
    needed: tuple[str, ...]  # the variables the model reads from newdata (empty: it does not say)
    columns: dict[str, StoredColumn]
    factor_terms: dict[str, str] = dataclasses.field(default_factory=dict)  # column -> the term made from it: factor(cyl)
    other_terms: tuple[str, ...] = ()  # factor terms whose levels no column's values can be matched with


def read_stored_columns(holder: Any) -> StoredModel:
    """Ask R (on the R thread) what the model in HOLDER (an R environment) stored about its variables."""
    import rpy2.rinterface as ri
    import rpy2.robjects as ro

    global _stored_columns
    if _stored_columns is None:
        _stored_columns = ro.r(STORED_COLUMNS_R)
    needed, names, kinds, sources, by_label, levels = ri.SexpClosure.__call__(_stored_columns, holder)
    columns = {} if names is ri.NULL else {
        str(name): StoredColumn(
            kind=str(kind), source=str(source), by_label=bool(label),
            levels=None if lv is ri.NULL else tuple(str(x) for x in lv),
        )
        for name, kind, source, label, lv in zip(names, kinds, sources, by_label, levels)
    }
    needed = tuple(str(n) for n in needed) if needed is not ri.NULL else ()
    factor_terms, other_terms = formula_factor_terms([n for n, c in columns.items() if c.levels is not None], needed)
    return StoredModel(needed=needed, columns=columns, factor_terms=factor_terms, other_terms=other_terms)


_stored_columns: Any = None

# R's data classes that a declared column type agrees with (integer columns are "numeric" to R).
_AGREEING_KINDS = {
    "numeric": {"numeric"},
    "integer": {"numeric"},
    "logical": {"logical"},
    "character": {"character"},
    "factor": {"factor", "character"},  # formula models turn a character column into a factor
    "ordered": {"ordered"},
}


def check_against_model(plan: ColumnPlan, model_info: StoredModel, path: str, model: str,
                        generic_predict: bool, declared_columns: bool = True) -> ColumnPlan:
    """PLAN with each factor column built on the model's own levels; ManifestError on a mismatch.

    With GENERIC_PREDICT (R's predict, no function of the team's own that might add columns),
    every variable the model reads must also be a column. DECLARED_COLUMNS: the plan comes
    from `r.columns` (else from the signature, and errors name `r.columns` as the field to add).
    The plan's `unchecked_levels` says which declared levels nothing could be compared with."""
    stored = model_info.columns
    declared = {s.name for s in plan.sources}
    missing = [v for v in model_info.needed if v not in declared]
    if generic_predict and missing:
        example = _column_for(missing[0], stored.get(missing[0]))
        raise ManifestError(path, "r.columns",
                            f"the model reads {', '.join(repr(m) for m in missing)} from newdata, but no column "
                            f"gives {'them' if len(missing) > 1 else 'it'}",
                            f"add a column for each, e.g. {example}, fed by an input of the signature (see {GUIDE})")
    sources, unchecked = [], []
    for index, source in enumerate(plan.sources):
        field = f"r.columns[{index}]" if declared_columns else "r.columns"
        term = model_info.factor_terms.get(source.name)
        if term is not None:
            sources.append(check_term_column(source, term, stored[term], path, field, model))
            continue
        known = stored.get(source.name)
        if source.r_type in FACTOR_TYPES and (known is None or known.levels is None):
            log.debug("model %s: no stored levels for factor column '%s'; using the declared levels as given",
                      model, source.name)
            unchecked.append(f"field '{field}.levels': the model keeps no levels for column '{source.name}', so "
                             f"the declared [{yaml_list(source.levels)}] (in this order) could not be compared "
                             "with the model's")
        if known is not None and (known.kind or known.levels is not None):
            source = _checked_column(source, known, path, field, model)
        sources.append(source)
    unchecked += [f"the model makes the factor {term} from its input, with levels [{yaml_list(stored[term].levels)}]"
                  "; meshserve cannot tell which input values give which level, so requests are not checked "
                  "against them" for term in model_info.other_terms]
    return ColumnPlan(sources, unchecked_levels=tuple(unchecked))


def _checked_column(source, known: StoredColumn, path: str, field: str, model: str):
    _check_kind(source, known, path, field)
    if source.r_type == "character" and known.levels is not None:
        return replace(source, r_levels=known.levels)  # the values R will accept (predict refuses others)
    if source.r_type in FACTOR_TYPES and known.levels is not None:
        return replace(source, r_levels=checked_levels(source, known, path, field, model))
    return source


def _check_kind(source, known: StoredColumn, path: str, field: str) -> None:
    kind = known.kind or ("factor" if known.levels is not None else "")
    if not kind or kind not in {k for kinds in _AGREEING_KINDS.values() for k in kinds}:
        return  # a matrix or another class: nothing to compare
    if known.kind == "" and source.r_type == "ordered":
        return  # levels alone cannot tell a factor from an ordered one
    if kind in _AGREEING_KINDS[source.r_type]:
        return
    if kind in ("factor", "ordered"):
        levels = f", levels: [{yaml_list(known.levels)}]" if known.levels is not None else ", levels: [...]"
        fix = f"declare it as {{name: {source.name}, type: {kind}{levels}}}"
    else:
        fix = f"declare it as {{name: {source.name}, type: {kind}}}"
    raise ManifestError(path, f"{field}.type",
                        f"column '{source.name}' is declared {source.r_type} but the model was trained with it "
                        f"as {_kind_words(kind)}", f"{fix} (see {GUIDE})")


def _column_for(name: str, known: StoredColumn | None) -> str:
    if known is not None and known.levels is not None:
        kind = known.kind if known.kind in ("factor", "ordered") else "factor"
        return f"{{name: {name}, type: {kind}, levels: [{yaml_list(known.levels)}]}}"
    kind = {"numeric": "numeric", "logical": "logical", "character": "character"}.get(known.kind if known else "",
                                                                                     "numeric")
    return f"{{name: {name}, type: {kind}}}"


def _kind_words(kind: str) -> str:
    return {"factor": "a factor", "ordered": "an ordered factor", "numeric": "a number",
            "logical": "a logical", "character": "text"}.get(kind, kind)
