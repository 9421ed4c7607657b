"""R errors at predict time that are the package's fault, said as the model.yaml fix.

With a `predict_file`, meshserve cannot know at load what the team's function calls, so two
package mistakes first show as R errors on every request: the model's package left out of
`r.packages` (`no applicable method for 'predict'`, `could not find function`) and a feature
named otherwise than the model's variable (`object 'Age' not found`). The model's class and the
variables it reads (taken at load) tell which package to attach and which feature to rename;
the line is appended to the R error, so the client's INTERNAL and `meshserve check` both say it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage

from .messages import GUIDE

# A model object's class -> the R package whose predict method scores it, where they are named otherwise
# (a class named like an installed package is taken to be that package's: randomForest, rpart, ranger).
PACKAGE_OF_CLASS = {
    "randomForest.formula": "randomForest", "svm": "e1071", "svm.formula": "e1071", "naiveBayes": "e1071",
    "elnet": "glmnet", "lognet": "glmnet", "multnet": "glmnet", "fishnet": "glmnet", "coxnet": "glmnet",
    "mrelnet": "glmnet", "cv.glmnet": "glmnet", "xgb.Booster": "xgboost", "lgb.Booster": "lightgbm",
    "ksvm": "kernlab", "train": "caret", "knn3": "caret", "multinom": "nnet", "nnet.formula": "nnet",
    "lda": "MASS", "qda": "MASS", "polr": "MASS", "rlm": "MASS", "negbin": "MASS", "C5.0": "C50",
    "coxph": "survival", "survreg": "survival", "lrm": "rms", "ols": "rms", "cph": "rms", "BinaryTree": "party",
    "constparty": "partykit", "party": "partykit", "classbagg": "ipred", "regbagg": "ipred",
    "naive_bayes": "naivebayes",
    "gbm": "gbm", "earth": "earth", "rpart": "rpart", "randomForest": "randomForest", "ranger": "ranger",
}


@dataclass(frozen=True)
class ModelFacts:
    """What the hints need, read once at load: the model's class, the installed packages named
    like one of its classes, the variables it reads, and the columns newdata has."""

    classes: tuple[str, ...] = ()
    installed_classes: tuple[str, ...] = ()
    needed: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()


_NO_METHOD = re.compile(r"no applicable method for '(?P<generic>[^']+)'")
_NO_FUNCTION = re.compile(r'could not find function "(?P<function>[^"]+)"')
_NO_OBJECT = re.compile(r"object '(?P<name>[^']+)' not found")


def package_hint(message: str, package: ModelPackage, facts: ModelFacts) -> str | None:
    """The ManifestError line (on `model.yaml`) for an R error MESSAGE caused by the package; None otherwise."""
    options = package.options
    if _NO_METHOD.search(message) or _NO_FUNCTION.search(message):
        missing = _package_for(facts, options.packages)
        if missing is None:
            return None
        what = ("R has no predict method for it" if _NO_METHOD.search(message)
                else f"R cannot find function {_NO_FUNCTION.search(message)['function']}")
        return str(ManifestError("model.yaml", "r.packages",
                                 f"the model is a {facts.classes[-1] if facts.classes else '?'} object (class "
                                 f"{', '.join(facts.classes)}) and {what}: its package {missing} is not attached",
                                 f"attach it: packages: [{', '.join([*options.packages, missing])}] (see {GUIDE}, "
                                 "section 'The r: section')"))
    found = _NO_OBJECT.search(message)
    if found and found["name"] not in facts.columns:
        return _feature_hint(found["name"], package, facts)
    return None


def _package_for(facts: ModelFacts, attached: list[str]) -> str | None:
    for cls in facts.classes:
        name = PACKAGE_OF_CLASS.get(cls) or (cls if cls in facts.installed_classes else None)
        if name is not None:
            return None if name in attached else name
    return None


def _feature_hint(name: str, package: ModelPackage, facts: ModelFacts) -> str | None:
    """A variable the model reads that newdata lacks: which feature (or column) to rename."""
    close = difflib.get_close_matches(name, facts.columns, n=1, cutoff=0.6)
    if name not in facts.needed and not close:
        return None  # a name in the team's own code, not a variable of the model
    options = package.options
    signature = package.manifest.signature
    field = "r.columns"
    if not options.columns:
        index = next((i for i, s in enumerate(signature.inputs) if close and s.features and close[0] in s.features),
                     None)
        field = f"signature.inputs[{index}].features" if index is not None else "signature.inputs"
    rename = f"rename '{close[0]}' to '{name}'" if close else f"add a feature named '{name}'"
    return str(ManifestError("model.yaml", field,
                             f"{options.predict_file or 'the predict function'} reads variable '{name}' from "
                             f"newdata, but newdata has no such column (it has {', '.join(facts.columns)})",
                             f"{rename}: the signature's feature names (or r.columns names) must match the model's "
                             f"variables (see {GUIDE}, section 'The r: section')"))
