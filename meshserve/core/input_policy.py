"""What values a model can take, checked before the model sees them: `input_policy:` in model.yaml.

Values the client sent that the model cannot score (NaN, infinity, magnitudes no float32
model survives, zero rows) are the client's mistake: refused as INVALID_ARGUMENT naming the
input, the row and the column, instead of reaching scikit-learn or R and coming back
INTERNAL. The defaults refuse them all; a model that handles missing values or empty
batches says so:

    input_policy:
      nan: allow        # the model treats NaN as a missing value (e.g. HistGradientBoosting)
      infinity: refuse
      max_abs: 1.0e6    # finite values beyond this are refused (default: float32's range)
      empty: allow      # zero rows answer zero rows

Each check is one vectorized pass over the decoded input: linear in its size.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from meshserve.core.errors import InvalidInput
from meshserve.core.strict_model import StrictModel

# Beyond this a value overflows float32, the precision most estimators compute in.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class InputPolicy(StrictModel):
    nan: Literal["refuse", "allow"] = Field(default="refuse", description="NaN in a floating-point input.")
    infinity: Literal["refuse", "allow"] = Field(default="refuse", description="+inf or -inf in a floating-point input.")
    max_abs: float | None = Field(default=FLOAT32_MAX, gt=0,
                                  description="Largest magnitude a finite value may have; null: any.")
    empty: Literal["refuse", "allow"] = Field(default="refuse",
                                              description="A request with zero rows (its batch dimension is 0).")


def check_values(inputs: dict[str, np.ndarray], signature, policy: InputPolicy) -> None:
    """Raise InvalidInput for the first value POLICY refuses in the decoded INPUTS."""
    for spec in signature.inputs:
        array = inputs.get(spec.name)
        if array is None:
            continue
        if policy.empty == "refuse" and spec.shape and spec.shape[0] == -1 and array.shape[0] == 0:
            raise InvalidInput(spec.name, "has zero rows; send at least one row (this model's input_policy "
                                          "refuses empty requests)")
        if array.dtype.kind != "f" or array.size == 0:
            continue
        problem = _first_refused(array, policy)
        if problem is not None:
            index, what = problem
            raise InvalidInput(spec.name, f"{_where(index, array.shape, spec.features)} is {what}; "
                                          f"send finite numbers{_limit(policy)} (model.yaml input_policy)")


def _first_refused(array: np.ndarray, policy: InputPolicy) -> tuple[int, str] | None:
    flat = array.reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        checks = []
        if policy.nan == "refuse":
            checks.append((np.isnan(flat), "NaN"))
        if policy.infinity == "refuse":
            checks.append((np.isinf(flat), "infinite"))
        if policy.max_abs is not None:
            checks.append((np.isfinite(flat) & (np.abs(flat.astype(np.float64)) > policy.max_abs),
                           f"beyond the largest magnitude this model takes ({policy.max_abs:g})"))
    found = [(int(np.argmax(mask)), what) for mask, what in checks if mask.any()]
    return min(found) if found else None


def _where(index: int, shape: tuple[int, ...], features: list[str] | None) -> str:
    if len(shape) == 2:
        row, column = divmod(index, shape[1])
        name = f"'{features[column]}'" if features and column < len(features) else str(column)
        return f"column {name} row {row}"
    return f"element {index}"


def _limit(policy: InputPolicy) -> str:
    return f" of magnitude at most {policy.max_abs:g}" if policy.max_abs is not None else ""
