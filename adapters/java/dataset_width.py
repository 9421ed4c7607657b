"""How many values a row must hold when it is wrapped in an object tied to a dataset header.

Weka builds an `Instance` from a row's values and gives it the training header (`setDataset`);
it reads the values by the header's attribute positions and never compares the counts, so a
model declared with fewer features than its header scores every request with values read from
the wrong place (the class slot taken for a feature), and the answers look fine. The header says
how many attributes it has (`numAttributes()`), so the count is checked at load where the
signature fixes a row's width, and on every request where the signature leaves it open.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meshserve.core.errors import InvalidInput, ManifestError
from meshserve.core.model_package import ModelPackage
from meshserve.adapters.java.options import LegacyOptions


def _wrapped_rows(spec: Any) -> list[tuple[dict, list[str]]]:
    """(row spec, objects its wrapper is given in `then`) for every `new` wrapping a row in SPEC."""
    found: list[tuple[dict, list[str]]] = []
    if isinstance(spec, list):
        for item in spec:
            found += _wrapped_rows(item)
    elif isinstance(spec, dict):
        if "new" in spec:
            given = [a["object"] for step in spec.get("then") or [] for a in step.get("args") or []
                     if isinstance(a, dict) and "object" in a]
            found += [(a, given) for a in spec.get("args") or [] if isinstance(a, dict) and "row" in a]
        for key in ("args", "then"):
            found += _wrapped_rows(spec.get(key) or [])
    return found


def row_widths(package: ModelPackage, legacy: LegacyOptions, objects: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """Input name -> (values per row its dataset header takes, the header's object name), for the
    inputs whose width the signature leaves open; a declared width that disagrees is refused here."""
    inputs = package.manifest.signature.inputs
    open_widths: dict[str, tuple[int, str]] = {}
    for row, given in _wrapped_rows([call.args for call in legacy.calls]):
        for name in given:
            attributes = getattr(objects.get(name), "numAttributes", None)
            if attributes is None:
                continue
            expected = int(attributes()) - len(row.get("append") or [])
            index = next(i for i, spec in enumerate(inputs) if spec.name == row["row"])
            dims = inputs[index].shape[1:]
            if any(d < 0 for d in dims):
                open_widths[row["row"]] = (expected, name)
            elif int(np.prod(dims, dtype=np.int64)) != expected:
                raise ManifestError(
                    str(package.manifest_path), f"signature.inputs[{index}].shape",
                    f"input '{row['row']}' has {int(np.prod(dims, dtype=np.int64))} values per row but the dataset "
                    f"header '{name}' takes {expected} (its {int(attributes())} attributes less "
                    f"{len(row.get('append') or [])} appended)",
                    f"declare shape [-1, {expected}] with the features the model was trained on, in training order")
    return open_widths


def check_row_widths(inputs: dict[str, np.ndarray], widths: dict[str, tuple[int, str]]) -> None:
    """Refuse a request whose rows do not fill their dataset header, before any Java runs."""
    for name, (expected, header) in widths.items():
        array = inputs.get(name)
        if array is None:
            continue
        got = int(np.prod(array.shape[1:], dtype=np.int64))
        if got != expected:
            raise InvalidInput(name, f"has {got} values per row but the model takes {expected} "
                                     f"(the attributes of its dataset header '{header}')")
