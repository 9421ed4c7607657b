"""The R function that scores a model, found and checked at load.

Mistakes here would otherwise surface at the first request, or never: a predict function
that does not exist, a model whose predict method no attached package provides (a
randomForest read back without `library(randomForest)`), and `predict_args` the function
cannot take or, worse, that a predict method's `...` silently swallows (`kind: response` for a
glm scores on the link scale without a word). Each becomes a ManifestError naming the field.
"""

from __future__ import annotations

from typing import Any

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage

from .messages import GUIDE, r_message

R_PREDICT_CALL = r"""
local({
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

  # What would go wrong calling the predict function, found before any request:
  # c("no_method", classes, a package named like a class) when no predict method exists for
  # the model's class; c("unknown_args", names, the function's arguments, the method) for predict_args
  # the function cannot take (or, for a predict method, would silently ignore); c("too_few", its
  # arguments) for a function that cannot be called as f(model, newdata); character(0).
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
    dots <- match("...", formal)
    if (!generic && !is.null(formal) && is.na(dots) && length(formal) < 2)
      return(c("too_few", paste(formal, collapse = ", "), ""))
    if (is.null(formal) || length(arg_names) == 0) return(character(0))
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
"""

_helpers: Any = None


def _support() -> Any:
    global _helpers
    if _helpers is None:
        import rpy2.robjects as ro

        _helpers = ro.r(R_PREDICT_CALL)
    return _helpers


def find_predict_function(package: ModelPackage, options: Any) -> Any:
    """The R function that scores: from predict_file, by name, or R's generic predict."""
    import rpy2.rinterface as ri
    import rpy2.robjects as ro
    from rpy2.rinterface_lib.embedded import RRuntimeError

    support = _support()
    where = str(package.manifest_path)
    if options.predict_file:
        try:
            found = support["load_predict_function"](str(package.path(options.predict_file)), options.predict_function)
        except RRuntimeError as exc:
            raise ManifestError(where, "r.predict_file", f"R cannot source {options.predict_file}: {r_message(exc)}",
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


def check_predict_call(holder: Any, predict_model: Any, options: Any, where: str) -> None:
    """ManifestError when the model has no predict method here or predict_args do not fit the function."""
    import rpy2.robjects as ro

    generic = not options.predict_function
    problem = [str(p) for p in _support()["predict_problems"](
        holder, predict_model, ro.BoolVector([generic]), ro.StrVector(list(options.predict_args)),
        ro.StrVector(list(options.packages)))]
    if not problem:
        return
    kind, detail, more = problem[:3]
    if kind == "too_few":
        raise ManifestError(where, "r.predict_function",
                            f"{options.predict_function} takes ({detail}), but meshserve calls it as "
                            f"{options.predict_function}(model, newdata)",
                            f"give it two arguments: {options.predict_function} <- function(model, newdata) (see "
                            f"{GUIDE}, section 'Your scoring function')")
    if kind == "no_method":
        fix = (f"attach the package that defines it: packages: [{', '.join([*options.packages, more])}]" if more else
               "attach the package that defines it under r.packages, or name your own function in r.predict_function")
        raise ManifestError(where, "r.packages", f"R has no predict method for the model's class ({detail})",
                            f"{fix} (see {GUIDE}, section 'The r: section')")
    function = options.predict_function or f"{problem[3]}, the model's predict method,"
    raise ManifestError(where, "r.predict_args",
                        f"{function} takes no argument named {detail}" + (
                            "; R would ignore it" if generic else "; R would refuse every request"),
                        f"use the function's own argument names ({more or 'it takes only model and newdata'}) "
                        f"(see {GUIDE}, section 'The r: section')")
