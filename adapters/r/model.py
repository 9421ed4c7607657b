"""The R side of one model: its packages, the saved model, the predict function, and one
R closure that builds the data.frame, predicts and flattens the result in a single call.

Everything here runs on the R thread (r_session.py). One rpy2 call per request keeps the
crossing cost (about 0.1 ms) from dominating small requests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage

from .columns import FACTOR_TYPES, ColumnPlan, FrameParts

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

  attach_package <- function(name) {
    suppressPackageStartupMessages(library(name, character.only = TRUE))
    invisible(NULL)
  }

  # The function, or the names of the functions the file does define.
  load_predict_function <- function(file, name) {
    env <- new.env(parent = globalenv())
    sys.source(file, envir = env, chdir = TRUE)
    if (exists(name, envir = env, inherits = FALSE) && is.function(get(name, envir = env)))
      return(get(name, envir = env))
    defined <- ls(env)
    defined[vapply(defined, function(n) is.function(get(n, envir = env)), NA)]
  }

  find_function <- function(name) {
    if (exists(name, mode = "function")) get(name, mode = "function") else NULL
  }

  # What would go wrong calling the predict function, found before any request:
  # c("no_method", classes, a package named like a class) when no predict method exists for
  # the model's class; c("unknown_args", names, the function's arguments) for predict_args
  # the function cannot take (or, for a predict method, would silently ignore); character(0).
  # Namespaces the model's own packages bring (with everything they import), and R's defaults:
  # a method from any other namespace was loaded by something else in this process.
  own_namespaces <- function(packages) {
    seen <- c("base", getOption("defaultPackages"))
    todo <- packages
    while (length(todo)) {
      ns <- todo[[1]]; todo <- todo[-1]
      if (ns %in% seen) next
      seen <- c(seen, ns)
      if (isNamespaceLoaded(ns)) todo <- c(todo, setdiff(names(getNamespaceImports(ns)), seen))
    }
    seen
  }

  predict_problems <- function(holder, predict_model, generic, arg_names, packages) {
    fn <- predict_model
    method <- ""
    if (generic) {
      classes <- class(holder$model)
      fn <- NULL
      own <- own_namespaces(packages)
      for (k in classes) {
        fn <- utils::getS3method("predict", k, optional = TRUE)
        home <- if (is.null(fn)) "" else environmentName(environment(fn))
        if (!is.null(fn) && !(home %in% own) && isNamespaceLoaded(home)) fn <- NULL
        if (!is.null(fn)) { method <- paste0("predict.", k); break }
      }
      if (is.null(fn)) {
        named <- classes[vapply(classes, function(k) nzchar(system.file(package = k)), NA)]
        return(c("no_method", paste(classes, collapse = ", "), if (length(named)) named[[1]] else ""))
      }
    }
    formal <- names(formals(fn))
    if (is.null(formal) || length(arg_names) == 0) return(character(0))
    dots <- match("...", formal)
    if (!is.na(dots) && !generic) return(character(0))  # passed on: only the function knows
    before <- if (is.na(dots)) formal else formal[seq_len(dots - 1)]
    matches <- function(a) a %in% formal || sum(startsWith(before, a)) == 1
    unknown <- arg_names[!vapply(arg_names, matches, NA)]
    if (length(unknown) == 0) return(character(0))
    c("unknown_args", paste(unknown, collapse = ", "),
      paste(setdiff(formal, c("...", formal[1:2])), collapse = ", "), method)
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
    def __init__(self, scorer: Any, plan: ColumnPlan):
        self._scorer = scorer
        self.plan = plan  # the columns as R builds them: factors on the model's own levels

    @classmethod
    def load(cls, package: ModelPackage, options: Any, plan: ColumnPlan) -> "RModel":
        """Attach the packages, read the model, find the predict function and check it against the
        model and the declared columns; ManifestError (file, field, fix) for each mistake."""
        import rpy2.rinterface as ri
        import rpy2.robjects as ro
        from rpy2.rinterface_lib.embedded import RRuntimeError

        from .levels import check_against_model, read_stored_columns

        support = r_support()
        where = str(package.manifest_path)
        for name in options.packages:
            try:
                support["attach_package"](name)
            except RRuntimeError as exc:
                raise ManifestError(where, "r.packages", f"R cannot load package '{name}': {_r_message(exc)}",
                                    _package_fix(name, exc)) from exc
        try:
            holder = support["read_model"](str(package.path(options.model)))
        except RRuntimeError as exc:
            raise ManifestError(where, "r.model", f"R cannot read {options.model}: {_r_message(exc)}",
                                f"save the model with saveRDS(model, \"{options.model}\") (see {GUIDE}, "
                                "section '2. Write the model package')") from exc
        predict_model = _predict_function(support, package, options)
        _check_predict_call(support, holder, predict_model, options, where)
        plan = check_against_model(plan, read_stored_columns(holder), where, f"{package.name}:{package.version}",
                                   generic_predict=not options.predict_function)
        extra = ro.vectors.ListVector({k: v for k, v in options.predict_args.items()}) if options.predict_args \
            else ri.ListSexpVector([])
        build = support["frame_builder"](
            ro.StrVector([s.name for s in plan.sources]),
            ro.StrVector([s.storage for s in plan.sources]),
            ro.IntVector([s.slot for s in plan.sources]),
            _levels_list(plan),
            ro.BoolVector([s.r_type == "ordered" for s in plan.sources]),
        )
        return cls(support["make_scorer"](holder, predict_model, extra, build), plan)

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


GUIDE = "docs/r-guide.md"


def _r_message(exc: Exception) -> str:
    """R's condition message, without the call it was raised in (the call is meshserve's, not the user's)."""
    message = " ".join(str(exc).split())
    if message.startswith("Error in ") and " : " in message:
        return message.split(" : ", 1)[1]
    return message.removeprefix("Error: ")


def _package_fix(name: str, exc: Exception) -> str:
    from .package_install import install_hint

    if "there is no package called" in str(exc):
        return f"{install_hint(name)} (see {GUIDE}, section 'Packages your model needs')"
    return f"R's message says why; reinstall the package or its system libraries (see {GUIDE}, section " \
           "'Packages your model needs')"


def _predict_function(support: Any, package: ModelPackage, options: Any) -> Any:
    import rpy2.rinterface as ri
    import rpy2.robjects as ro
    from rpy2.rinterface_lib.embedded import RRuntimeError

    where = str(package.manifest_path)
    if options.predict_file:
        try:
            found = support["load_predict_function"](str(package.path(options.predict_file)), options.predict_function)
        except RRuntimeError as exc:
            raise ManifestError(where, "r.predict_file", f"R cannot source {options.predict_file}: {_r_message(exc)}",
                                f"fix the R file; `Rscript -e 'source(\"{options.predict_file}\")'` in the package "
                                f"shows the same error (see {GUIDE}, section 'Your scoring function')") from exc
        if not isinstance(found, ri.SexpClosure):
            defined = [str(n) for n in found] if found is not ri.NULL else []
            raise ManifestError(where, "r.predict_function",
                                f"{options.predict_file} defines no function named '{options.predict_function}'"
                                f" (it defines {', '.join(defined) if defined else 'no function'})",
                                f"name one of the file's functions, or define `{options.predict_function} <- "
                                f"function(model, newdata)` in it (see {GUIDE}, section 'Your scoring function')")
        return found
    if options.predict_function:
        found = support["find_function"](options.predict_function)
        if not isinstance(found, ri.SexpClosure):
            attached = f" (attached: {', '.join(options.packages)})" if options.packages else ""
            raise ManifestError(where, "r.predict_function",
                                f"R has no function named '{options.predict_function}'{attached}",
                                "add the package that defines it to r.packages, or define it in an R file named "
                                f"by r.predict_file (see {GUIDE}, section 'Your scoring function')")
        return found
    return ro.r("stats::predict")


def _check_predict_call(support: Any, holder: Any, predict_model: Any, options: Any, where: str) -> None:
    import rpy2.robjects as ro

    generic = not options.predict_function
    problem = [str(p) for p in support["predict_problems"](
        holder, predict_model, ro.BoolVector([generic]), ro.StrVector(list(options.predict_args)),
        ro.StrVector(list(options.packages)))]
    if not problem:
        return
    kind, detail, more = problem[:3]
    if kind == "no_method":
        fix = (f"attach the package that defines it: packages: [{more}]" if more else
               "attach the package that defines it under r.packages, or name your own function in r.predict_function")
        raise ManifestError(where, "r.packages", f"R has no predict method for the model's class ({detail})",
                            f"{fix} (see {GUIDE}, section 'The r: section')")
    function = options.predict_function or f"{problem[3]}, the model's predict method,"
    raise ManifestError(where, "r.predict_args",
                        f"{function} takes no argument named {detail}" + (
                            "; R would ignore it" if generic else "; R would refuse every request"),
                        f"use the function's own argument names ({more or 'it takes only model and newdata'}) "
                        f"(see {GUIDE}, section 'The r: section')")


def _levels_list(plan: ColumnPlan) -> Any:
    import rpy2.rinterface as ri
    import rpy2.robjects as ro

    return ri.ListSexpVector([ro.StrVector(s.factor_levels) if s.r_type in FACTOR_TYPES else ri.NULL
                              for s in plan.sources])


def _as_numpy(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    return np.asarray(list(values))
