"""scikit-learn estimators fitted on a pandas DataFrame: the frame built from the named inputs.

A Pipeline with a ColumnTransformer (one-hot on text columns, scaling on numbers) remembers
the columns it was fitted on in `feature_names_in_`. The request's inputs become those
columns: each feature of a 2-D input with `features:` is a column, a 1-D input is the column
named like it, BYTES become text. The columns are checked against `feature_names_in_` when
the model loads, so a missing or misnamed column is refused by name at start, not on every
request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meshserve.core.errors import InvalidInput, ManifestError
from meshserve.core.model_package import ModelPackage


@dataclass(frozen=True)
class FrameColumn:
    name: str  # the column the estimator was fitted with
    input: str  # the V2 input holding it
    index: int | None  # its position along the input's last axis; None for a 1-D input
    text: bool  # BYTES: decoded to str


class FramePlan:
    def __init__(self, columns: list[FrameColumn]):
        self.columns = columns

    @classmethod
    def for_estimator(cls, estimator, package: ModelPackage) -> "FramePlan | None":
        """The plan when the estimator was fitted on a DataFrame (it knows its column names), else None."""
        fitted = getattr(estimator, "feature_names_in_", None)
        if fitted is None:
            return None
        return cls.for_columns([str(c) for c in fitted], package, "the estimator was fitted on")

    @classmethod
    def for_columns(cls, wanted: list[str], package: ModelPackage, who: str) -> "FramePlan":
        """The plan giving the columns WANTED, in that order; ManifestError naming those no input gives."""
        available: dict[str, FrameColumn] = {}
        for spec in package.manifest.signature.inputs:
            text = spec.datatype == "BYTES"
            if spec.features:
                for j, feature in enumerate(spec.features):
                    available[feature] = FrameColumn(feature, spec.name, j, text)
            elif len(spec.shape) == 1:
                available[spec.name] = FrameColumn(spec.name, spec.name, None, text)
            elif len(spec.shape) == 2 and spec.shape[1] == 1:
                available[spec.name] = FrameColumn(spec.name, spec.name, 0, text)
        missing = [c for c in wanted if c not in available]
        if missing:
            have = ", ".join(sorted(available)) or "(none)"
            raise ManifestError(str(package.manifest_path), "signature.inputs",
                                f"{who} columns the inputs do not provide: "
                                f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} (the inputs give: {have})",
                                "name each column as a feature of an input (features: [...]) or as a 1-D input "
                                "called like the column")
        return cls([available[c] for c in wanted])

    def frame(self, inputs: dict[str, np.ndarray]):
        import pandas as pd

        rows = {len(a) for a in inputs.values()}
        if len(rows) > 1:
            raise InvalidInput(None, f"inputs have different numbers of rows ({', '.join(map(str, sorted(rows)))}); "
                                     "every input needs one row per example")
        data = {}
        for column in self.columns:
            array = inputs[column.input]
            values = array if column.index is None else array[:, column.index]
            if column.text:
                values = np.array([v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)
                                   for v in values], dtype=object)
            data[column.name] = values
        return pd.DataFrame(data, columns=[c.name for c in self.columns])
