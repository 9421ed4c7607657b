"""Loading a pickled model, and saying in one line why it cannot be loaded here.

A pickle records classes, not versions: a model saved under other library versions fails with
words about internals (`MT19937 is not a known BitGenerator module`, `No module named
'numpy._core'`). Those are read here as the library and version the model needs, set against
what this environment has and what model.yaml recorded (`environment.python.requirements`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
from typing import Any

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage

# (what the error says, the distribution, what it means the model needs)
_SIGNS = (
    (re.compile(r"is not a known BitGenerator"), "numpy", ">= 2 (it was saved with numpy 2)"),
    (re.compile(r"No module named 'numpy\._core"), "numpy", ">= 2 (it was saved with numpy 2)"),
    (re.compile(r"numpy\.dtype size changed|binary incompatibility"), "numpy", "the version it was saved with"),
)
# Import names whose distribution is called otherwise, for models whose library is not installed at all.
_DISTRIBUTION_OF = {"sklearn": "scikit-learn", "skops": "skops", "xgboost": "xgboost", "lightgbm": "lightgbm",
                    "yaml": "pyyaml", "PIL": "pillow", "cv2": "opencv-python"}


def load_estimator(package: ModelPackage) -> Any:
    """joblib.load (skops.io.load for .skops) of the package's entrypoint; a failure becomes one ManifestError line."""
    path = package.path(package.manifest.entrypoint)
    try:
        if path.suffix == ".skops":
            import skops.io

            # skops refuses types outside its defaults unless the package names them (python.trusted_types).
            return skops.io.load(path, trusted=getattr(package.options, "trusted_types", None))
        import joblib

        return joblib.load(path)
    except Exception as exc:  # anything unpickling raises: the model cannot be served here
        # A library absent altogether (not one of another version, whose module paths differ): name it to pin.
        if isinstance(exc, ModuleNotFoundError) and exc.name and \
                importlib.util.find_spec(exc.name.split(".")[0]) is None:
            raise missing_dependency(package, str(package.manifest.entrypoint), exc) from exc
        raise ManifestError(str(package.manifest_path), "entrypoint", why_not_loaded(package, exc),
                            _fix(package)) from exc  # the traceback shows under --debug only


def missing_dependency(package: ModelPackage, what: str, exc: ModuleNotFoundError) -> ManifestError:
    """WHAT (the model file, or its module) imports a library this environment lacks: name it,
    and where its pin belongs."""
    module = (exc.name or "?").split(".")[0]
    distribution = _DISTRIBUTION_OF.get(module, module)
    recorded = recorded_versions(package)
    canonical = re.sub(r"[-_.]+", "-", distribution).lower()  # as packaging names the pins
    if recorded and canonical not in recorded:
        problem = (f"{what} imports {module}, but {distribution} is not among the requirements model.yaml pins, so "
                   f"the model's environment lacks it ({len(recorded)} pinned: {', '.join(sorted(recorded)[:5])}"
                   f"{', ...' if len(recorded) > 5 else ''})")
    else:
        problem = f"{what} imports {module}, which this environment ({sys.executable}) does not have"
    fix = (f"pin it with the version the model was trained with: add {distribution}==VERSION to "
           f"environment.python.requirements (or record them all: `meshserve package {package.directory} "
           "--from-venv TRAINING_VENV`); `meshserve up` builds the model's environment from those pins")
    return ManifestError(str(package.manifest_path), "environment.python.requirements", problem, fix)


def missing_method(package: ModelPackage, estimator: Any, output: str, method: str) -> ManifestError:
    """An estimator method model.yaml names that the estimator lacks, with the ones it has."""
    import difflib

    names = sorted(n for n in dir(estimator) if not n.startswith("_") and _is_method(estimator, n))
    scoring = [n for n in names if n.startswith(_SCORING_PREFIXES)] or names
    close = difflib.get_close_matches(method, scoring, n=3, cutoff=0.6)
    shown = close + [n for n in scoring if n not in close]
    return ManifestError(str(package.manifest_path), f"python.methods.{output}",
                         f"{type(estimator).__name__} has no method {method}",
                         f"name one of the methods it has: {', '.join(shown[:10])}"
                         + (f" (python: {{methods: {{{output}: {close[0]}}}}})" if close else ""))


def _is_method(estimator: Any, name: str) -> bool:
    try:
        return callable(getattr(estimator, name, None))
    except Exception:  # a property that raises when read (an unfitted attribute, say) is no method anyway
        return False


# The methods an estimator scores with, listed first when model.yaml names one it lacks.
_SCORING_PREFIXES = ("predict", "decision_function", "transform", "score_samples", "apply")


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def recorded_versions(package: ModelPackage) -> dict[str, str]:
    """What model.yaml says the model was trained with: canonical name -> version."""
    from meshserve.environments.requirements import pinned_versions

    recorded = ((package.manifest.environment or {}).get("python") or {}).get("requirements") or []
    try:
        return pinned_versions([r for r in recorded if isinstance(r, str)])
    except ValueError:
        return {}


def why_not_loaded(package: ModelPackage, exc: BaseException) -> str:
    entry = package.manifest.entrypoint
    said = f"{type(exc).__name__}: {exc}"
    recorded = recorded_versions(package)
    for sign, distribution, needs in _SIGNS:
        if sign.search(str(exc)):
            wanted = recorded.get(distribution)
            # A pin that does not load the model was recorded from another environment than its training one.
            recorded_note = f"; model.yaml records {distribution}=={wanted}, which cannot be it" if wanted else ""
            return (f"{entry} cannot be loaded: it needs {distribution} {needs}, and this environment has "
                    f"{distribution} {installed_version(distribution) or '(not installed)'}{recorded_note} ({said})")
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        module = exc.name.split(".")[0]
        distribution = _DISTRIBUTION_OF.get(module, module)
        wanted = recorded.get(distribution)
        have = installed_version(distribution)
        return (f"{entry} cannot be loaded: it needs {distribution}"
                f"{'==' + wanted if wanted else ''}, and this environment has "
                f"{distribution + ' ' + have if have else 'no ' + distribution} ({said})")
    differences = [f"{name} {version} recorded, {installed_version(name) or 'not installed'} here"
                   for name, version in sorted(recorded.items()) if installed_version(name) != version]
    if differences:
        return (f"{entry} cannot be loaded ({said}); this environment differs from the one model.yaml records: "
                + ", ".join(differences[:4]) + (f" and {len(differences) - 4} more" if len(differences) > 4 else ""))
    return f"{entry} cannot be loaded ({said})"


def _fix(package: ModelPackage) -> str:
    if recorded_versions(package):
        return (f"serve it with `meshserve up`, which runs it in an environment built from "
                f"environment.python.requirements; if that is where it fails, record the environment it was really "
                f"trained in: `meshserve package {package.directory} --from-venv TRAINING_VENV`")
    return (f"record the environment it was trained in: `meshserve package {package.directory} --from-venv "
            "TRAINING_VENV` (or --requirements FILE); `meshserve up` then runs it in an environment of its own")
