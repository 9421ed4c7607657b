"""The R side of one model: its packages, the saved model, the predict function, and one
R closure that builds the data.frame, predicts and flattens the result in a single call.

Everything here runs on the R thread (r_session.py). One rpy2 call per request keeps the
crossing cost (about 0.1 ms) from dominating small requests.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage

from .columns import FACTOR_TYPES, ColumnPlan, FrameParts
from .messages import GUIDE, r_message
from .predict_errors import ModelFacts

log = logging.getLogger("meshserve.adapters.r")

# Helpers evaluated once per process into their own R environment.
INVALID_INPUT_MARK = "[invalid input] "

R_SUPPORT = r"""
local({
  INVALID_INPUT_MARK <- "@INVALID_INPUT_MARK@"
  frame_builder <- function(names, storage, slots, levels, ordered) {
    force(names); force(storage); force(slots); force(levels); force(ordered)
    # What factor(x, levels, ordered = TRUE) would build, without matching labels again.
    classes <- lapply(ordered, function(o) if (o) c("ordered", "factor") else "factor")
    function(n, num, int, lgl, chr) {
      cols <- vector("list", length(names))
      for (i in seq_along(names)) {
        j <- slots[[i]]
        cols[[i]] <- switch(storage[[i]],
          num = num[, j],
          int = if (is.null(levels[[i]])) int[, j]
                else structure(int[, j], levels = levels[[i]], class = classes[[i]]),
          lgl = lgl[, j],
          chr = chr[, j])
      }
      names(cols) <- names
      structure(cols, class = "data.frame", row.names = c(NA_integer_, -n))
    }
  }

  # A vector, matrix, data.frame or list of vectors -> a named list of plain vectors.
  result_columns <- function(result) {
    if (inherits(result, "ranger.prediction")) result <- result$predictions
    if (is.data.frame(result)) {
      cols <- as.list(result)
    } else if (is.matrix(result)) {
      cn <- colnames(result)
      if (is.null(cn)) cn <- paste0("V", seq_len(ncol(result)))
      cols <- lapply(seq_len(ncol(result)), function(j) result[, j])
      names(cols) <- cn
    } else if (is.factor(result) || is.atomic(result)) {
      cols <- list(.value = result)
    } else if (is.list(result) && !is.null(names(result))) {
      cols <- result
    } else {
      stop("the predict function returned a ", class(result)[[1]],
           "; return a vector, matrix or data.frame")
    }
    lapply(cols, function(v) if (is.factor(v)) as.character(v) else as.vector(v))
  }

  # The model is read here and stays in R: converting it to Python and back would strip its class.
  read_model <- function(model_file) {
    holder <- new.env(parent = emptyenv())
    holder$model <- readRDS(model_file)
    holder
  }

  make_scorer <- function(holder, predict_model, extra, build) {
    model <- holder$model
    force(predict_model); force(extra); force(build)
    function(n, num, int, lgl, chr) {
      newdata <- build(n, num, int, lgl, chr)
      # Called by name so an R error reads "Error in predict_model(model, newdata)",
      # not a deparsed copy of the model.
      result <- tryCatch(
        do.call("predict_model", c(list(quote(model), quote(newdata)), extra)),
        # The model's own way to say the input is at fault:
        # stop(errorCondition("why", class = "invalid_input"))
        invalid_input = function(e) stop(paste0(INVALID_INPUT_MARK, conditionMessage(e)), call. = FALSE))
      result_columns(result)
    }
  }

  # The model's classes, marked "*" where an installed package has that name (its predict method
  # may live there). A plain character vector: it reads back the same under any converter.
  model_classes <- function(holder) {
    k <- class(holder$model)
    paste0(k, ifelse(vapply(k, function(p) nzchar(system.file(package = p)), NA), "*", ""))
  }

  attach_package <- function(name) {
    suppressPackageStartupMessages(library(name, character.only = TRUE))
    invisible(NULL)
  }

  environment()
})
""".replace("@INVALID_INPUT_MARK@", INVALID_INPUT_MARK)

_support: Any = None


def r_support() -> Any:
    """The helper environment (created on first use, on the R thread)."""
    global _support
    if _support is None:
        import rpy2.robjects as ro

        _support = ro.r(R_SUPPORT)
    return _support


class RModel:
    def __init__(self, scorer: Any, plan: ColumnPlan, facts: ModelFacts | None = None):
        self._scorer = scorer
        self.plan = plan  # the columns as R builds them: factors on the model's own levels
        self.facts = facts or ModelFacts()  # what an R error at predict is read against (predict_errors.py)

    @classmethod
    def load(cls, package: ModelPackage, options: Any, plan: ColumnPlan) -> "RModel":
        """Attach the packages, read the model, find the predict function and check it against the
        model and the declared columns; ManifestError (file, field, fix) for each mistake."""
        import rpy2.rinterface as ri
        import rpy2.robjects as ro
        from rpy2.rinterface_lib.embedded import RRuntimeError

        from .levels import StoredModel, check_against_model, read_stored_columns
        from .package_install import package_fix
        from .predict_call import check_predict_call, find_predict_function

        support = r_support()
        where = str(package.manifest_path)
        for name in options.packages:
            try:
                support["attach_package"](name)
            except RRuntimeError as exc:
                raise ManifestError(where, "r.packages", f"R cannot load package '{name}': {r_message(exc)}",
                                    package_fix(name, exc)) from exc
        try:
            holder = support["read_model"](str(package.path(options.model)))
        except RRuntimeError as exc:
            raise ManifestError(where, "r.model", f"R cannot read {options.model}: {r_message(exc)}",
                                f"save the model with saveRDS(model, \"{options.model}\") (see {GUIDE}, "
                                "section '2. Write the model package')") from exc
        predict_model = find_predict_function(package, options)
        model = f"{package.name}:{package.version}"
        try:
            check_predict_call(holder, predict_model, options, where)
        except RRuntimeError as exc:  # an object these checks do not understand: R will say at predict
            log.debug("model %s: predict function not checked: %s", model, r_message(exc))
        try:
            stored = read_stored_columns(holder)
        except RRuntimeError as exc:
            log.debug("model %s: stored levels not read: %s", model, r_message(exc))
            stored = StoredModel(needed=(), columns={})
        plan = check_against_model(plan, stored, where, model, generic_predict=not options.predict_function,
                                   declared_columns=bool(options.columns))
        extra = ro.vectors.ListVector({k: v for k, v in options.predict_args.items()}) if options.predict_args \
            else ri.ListSexpVector([])
        build = support["frame_builder"](
            ro.StrVector([s.name for s in plan.sources]),
            ro.StrVector([s.storage for s in plan.sources]),
            ro.IntVector([s.slot for s in plan.sources]),
            _levels_list(plan),
            ro.BoolVector([s.r_type == "ordered" for s in plan.sources]),
        )
        marked = [str(k) for k in support["model_classes"](holder)]
        facts = ModelFacts(tuple(k.rstrip("*") for k in marked), tuple(k[:-1] for k in marked if k.endswith("*")),
                           stored.needed, tuple(s.name for s in plan.sources))
        return cls(support["make_scorer"](holder, predict_model, extra, build), plan, facts)

    def score(self, parts: FrameParts) -> dict[str, np.ndarray]:
        import rpy2.rinterface as ri
        from rpy2.robjects.conversion import get_conversion

        # Called at the rinterface level with explicit conversions: robjects' generic argument
        # and result conversion costs about a third of a single-row prediction.
        convert = get_conversion()
        args = [ri.IntSexpVector([parts.rows])]
        args += [ri.NULL if m is None else convert.py2rpy(m) for m in (parts.num, parts.int, parts.lgl, parts.chr)]
        result = ri.SexpClosure.__call__(self._scorer, *args)
        return {name: _as_numpy(convert.rpy2py(values)) for name, values in zip(result.names, result)}

    def release(self) -> None:
        self._scorer = None
        import rpy2.robjects as ro

        ro.r("invisible(gc())")


def _levels_list(plan: ColumnPlan) -> Any:
    import rpy2.rinterface as ri
    import rpy2.robjects as ro

    return ri.ListSexpVector([ro.StrVector(s.factor_levels) if s.r_type in FACTOR_TYPES else ri.NULL
                              for s in plan.sources])


def _as_numpy(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    return np.asarray(list(values))
