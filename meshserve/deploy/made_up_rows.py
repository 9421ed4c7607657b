"""What values each input column may take, for rows made up when no real rows are at hand.

`meshserve package` without `--golden-from`, and the validation gate for a package without
golden examples, score rows made up from the package. A made-up value outside what the model
takes (`value-0` for an R factor with levels `0-5yrs, 6-11yrs, 12+ yrs`, a category a
OneHotEncoder never saw) is refused by a correct model and says nothing about the version. So
the values come, column by column, from the best source there is:

1. the model's own categories where they can be read here: a scikit-learn estimator's encoders
   (when the package runs in this environment) or an ONNX graph's OneHotEncoder nodes;
2. the levels an R column declares in `r.columns` (checked against the model's own at load);
3. the signature's `limits` (`categories`, `range`);
4. else small made-up numbers and `value-N` text (golden.py).

A model's domain it keeps in code (a Java model refusing an age under 18) cannot be read: such
a package declares `limits` or carries golden examples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from meshserve.core.category_check import KnownCategories
from meshserve.core.model_package import ModelPackage, Signature, TensorSpec

log = logging.getLogger("meshserve.deploy")


@dataclass(frozen=True)
class Domain:
    """Where a column's made-up values come from: categories to cycle through, or a range to spread over."""

    categories: tuple | None = None
    range: tuple[float, float] | None = None
    source: str = ""


Domains = dict[tuple[str, str], Domain]  # (input, column: a feature's name or the input's own)


def declared_domains(signature: Signature) -> Domains:
    return {key: domain for spec in signature.inputs for key, domain in spec_domains(spec).items()}


def spec_domains(spec: TensorSpec) -> Domains:
    """The domains one input's `limits` declare."""
    return {(spec.name, column): Domain(tuple(limit.categories) if limit.categories is not None else None,
                                        limit.range, "model.yaml limits")
            for column, limit in (spec.limits or {}).items()}


def package_domains(package: ModelPackage) -> Domains:
    """Each column's domain for PACKAGE, the model's own over what model.yaml declares."""
    signature = package.manifest.signature
    domains = declared_domains(signature)
    domains.update(_r_levels(package))
    for known in _model_categories(package):
        column = _column_name(signature, known)
        if column is not None:
            domains[(known.input, column)] = Domain(known.values, None, known.source)
    return domains


def _column_name(signature: Signature, known: KnownCategories) -> str | None:
    spec = signature.input(known.input)
    if spec is None:
        return None
    if spec.features and known.index is not None and known.index < len(spec.features):
        return spec.features[known.index]
    return spec.name if not spec.features else None


def _r_levels(package: ModelPackage) -> Domains:
    """The levels `r.columns` declares for factor and ordered columns (the R runtime refuses any other)."""
    if package.manifest.runtime != "r":
        return {}
    domains: Domains = {}
    signature = package.manifest.signature
    for column in getattr(package.options, "columns", None) or ():
        if not column.levels:
            continue
        feature = column.feature or column.name
        spec = (signature.input(column.input) if column.input else None) or next(
            (s for s in signature.inputs if s.features and feature in s.features), None) or signature.input(feature)
        if spec is not None:
            name = feature if spec.features and feature in spec.features else spec.name
            domains[(spec.name, name)] = Domain(tuple(column.levels), None, f"r.columns '{column.name}' levels")
    return domains


def _model_categories(package: ModelPackage) -> list[KnownCategories]:
    """The categories a Python model learnt, where it can be read in this process; [] otherwise."""
    if package.manifest.runtime != "python":
        return []
    entry = package.manifest.entrypoint or ""
    try:
        if entry.endswith(".onnx"):
            from meshserve.adapters.python.inspection import onnx_categories

            return onnx_categories(package)
        if entry.endswith((".joblib", ".pkl", ".pickle", ".skops")) and not _own_environment(package):
            from meshserve.adapters.python.inspection import estimator_columns, learnt_categories
            from meshserve.adapters.python.inspection import FramePlan
            from meshserve.adapters.python.inspection import load_estimator

            estimator = load_estimator(package)
            columns = estimator_columns(package, FramePlan.for_estimator(estimator, package))
            return learnt_categories(estimator, columns)
    except Exception as exc:  # the fresh adapter reports a model that does not load; here it only lacks hints
        log.debug("%s: the model's own categories not read: %s", package.manifest_path, exc)
    return []


def _own_environment(package: ModelPackage) -> bool:
    python = (package.manifest.environment or {}).get("python") or {}
    return bool(python.get("requirements"))

