"""What values an input feature may take, as a model's signature declares them.

    signature:
      inputs:
        - name: features
          datatype: FP64
          shape: [-1, 30]
          features: [mean radius, mean texture, ...]
          limits:
            mean radius: {range: [5, 30]}      # numeric: lowest and highest expected value
        - name: species
          datatype: BYTES
          shape: [-1, 1]
          limits:
            species: {categories: [setosa, versicolor, virginica]}

Ranges do not refuse requests: the adapters count values outside them per feature
(`meshserve_feature_out_of_range_total`), and a numeric range also sets the buckets of the
feature's value histogram. Categories are counted the same way, and a Python model's adapter
also refuses values outside them before the model runs (category_check.py), unless the model's
own encoder says which values it takes. A tensor without `features` is one feature named after the tensor.
"""

from __future__ import annotations

from pydantic import model_validator

from meshserve.core.strict_model import StrictModel


class LimitError(ValueError):
    """A mistake in `limits`, with the fix that the manifest error shows."""

    def __init__(self, problem: str, fix: str):
        super().__init__(problem)
        self.fix = fix


class FeatureLimit(StrictModel):
    range: tuple[float, float] | None = None  # [lo, hi], inclusive
    categories: list[str] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> FeatureLimit:
        if (self.range is None) == (self.categories is None):
            raise LimitError("a feature limit needs exactly one of range or categories",
                             "write {range: [lo, hi]} for a number or {categories: [a, b]} for a category")
        if self.range is not None and not self.range[0] < self.range[1]:
            raise LimitError(f"range {list(self.range)} is empty", "write the range as [lowest, highest] with lowest < highest")
        if self.categories is not None:
            if not self.categories:
                raise LimitError("categories is empty", "list the categories the feature may take")
            if len(set(self.categories)) != len(self.categories):
                raise LimitError("categories repeat", "list each category once")
        return self


def check_limits(limits: dict[str, FeatureLimit], feature_names: list[str], datatype: str) -> None:
    """Every limit names a feature of its tensor and suits its datatype."""
    for feature, limit in limits.items():
        if feature not in feature_names:
            raise LimitError(f"limits name '{feature}', which is not a feature of this input "
                             f"(its features: {', '.join(feature_names)})",
                             "use a name from the input's features list (or the input's own name when it has none)")
        if limit.range is not None and datatype == "BYTES":
            raise LimitError(f"feature '{feature}' is BYTES but has a numeric range",
                             "give a BYTES feature categories instead of a range")
        if limit.categories is not None and datatype != "BYTES":
            raise LimitError(f"feature '{feature}' is {datatype} but has categories",
                             "give a numeric feature a range, or declare the input BYTES")
