"""Golden examples: inputs with the outputs the model gave for them when it was packaged.

`meshserve package` records them by scoring sample rows (from a file, or made up inside what
the model takes: its own categories, R levels, the signature's ranges and categories;
made_up_rows.py) through the package's own runtime in a fresh
adapter process, and writes them to `golden.json` in the package. `meshserve check`
and the validation gate score the same inputs again in a fresh adapter and compare: a
number passes when it is within the tolerance of the recorded one (absolute or relative,
whichever is looser), text and booleans when they are equal.

    {"tolerance": 1e-06, "examples": [{"inputs": {"x": {"datatype": "FP32", "shape": [1, 4],
                                                         "data": [[5.1, 3.5, 1.4, 0.2]]}},
                                       "outputs": {"y": {"datatype": "FP32", ...}}}]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from meshserve.core.datatypes import NUMPY_DTYPES
from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage, Signature, TensorSpec
from meshserve.deploy.fresh_adapter import FreshAdapter

FILE_NAME = "golden.json"
DEFAULT_ROWS = 8
DEFAULT_TOLERANCE = 1e-6


# -- the rows to score -------------------------------------------------------------------------

def _row_shape(spec: TensorSpec) -> list[int]:
    return [1 if d == -1 else d for d in spec.shape]


def _typed(values: list, datatype: str) -> np.ndarray:
    if datatype == "BYTES":
        return np.array([v if isinstance(v, bytes) else str(v).encode() for v in values], dtype=object)
    if datatype == "BOOL":
        return np.array([bool(v) for v in values])
    dtype = NUMPY_DTYPES[datatype]
    if dtype.kind in "iu":
        return np.array([int(round(float(v))) for v in values], dtype=dtype)
    return np.array([float(v) for v in values], dtype=dtype)


def _generated(spec: TensorSpec, column: str, count: int, domain=None) -> list:
    """COUNT values spread over the column's domain (made_up_rows.py), else its declared limits (deterministic)."""
    if domain is None:
        from meshserve.deploy.made_up_rows import spec_domains

        domain = spec_domains(spec).get((spec.name, column))
    if domain is not None and domain.categories:
        return [domain.categories[i % len(domain.categories)] for i in range(count)]
    if domain is not None and domain.range is not None:
        lo, hi = domain.range
        return [lo + (hi - lo) * (i + 0.5) / count for i in range(count)]
    if spec.datatype == "BYTES":
        return [f"value-{i}" for i in range(count)]
    if spec.datatype == "BOOL":
        return [i % 2 for i in range(count)]
    return [i % 10 for i in range(count)] if NUMPY_DTYPES[spec.datatype].kind in "iu" else \
        [0.25 * (i + 1) for i in range(count)]


def rows_from_signature(signature: Signature, count: int, domains=None) -> list[dict[str, np.ndarray]]:
    """COUNT one-row requests made from each input's DOMAINS ((input, column) -> Domain), else its
    declared ranges and categories."""
    columns: dict[str, list[list]] = {}
    for spec in signature.inputs:
        names = spec.features or [spec.name]
        columns[spec.name] = [_generated(spec, name, count, (domains or {}).get((spec.name, name)))
                              for name in names]
    rows = []
    for i in range(count):
        row = {}
        for spec in signature.inputs:
            shape = _row_shape(spec)
            values = [column[i] for column in columns[spec.name]]
            size = int(np.prod(shape))
            values = (values * size)[:size]  # a tensor without feature names repeats its one column
            row[spec.name] = _typed(values, spec.datatype).reshape(shape)
        rows.append(row)
    return rows


def rows_for_package(package: ModelPackage, count: int) -> list[dict[str, np.ndarray]]:
    """COUNT one-row requests inside what PACKAGE's model takes, as far as it can be read
    (its own categories, R levels, declared limits: made_up_rows.py)."""
    from meshserve.deploy.made_up_rows import package_domains

    return rows_from_signature(package.manifest.signature, count, package_domains(package))


def rows_from_file(signature: Signature, path: Path, count: int) -> list[dict[str, np.ndarray]]:
    """COUNT one-row requests from a table: each input takes the columns named by its features
    (or the column named like the input), rows spread evenly over the file."""
    from meshserve.deploy.data_files import read_table

    table = read_table(path, "--golden-from")
    if table.num_rows == 0:
        raise ManifestError(str(path), "--golden-from", "the file has no rows", "give a file with sample rows")
    picked = sorted({int(i * table.num_rows / count) for i in range(min(count, table.num_rows))})
    rows: list[dict[str, np.ndarray]] = [{} for _ in picked]
    for spec in signature.inputs:
        names = spec.features or [spec.name]
        missing = [n for n in names if n not in table.column_names]
        if missing:
            raise ManifestError(str(path), "--golden-from", f"no column {', '.join(repr(m) for m in missing)} "
                                f"for input '{spec.name}' (columns: {', '.join(table.column_names[:20])})",
                                "give a file with a column per feature of each input, named as in model.yaml")
        shape = _row_shape(spec)
        if int(np.prod(shape)) != len(names):
            raise ManifestError(str(path), "--golden-from", f"input '{spec.name}' of shape {spec.shape} cannot be "
                                "made from table columns", "record golden examples without --golden-from (from "
                                "the signature's ranges) for inputs of more than one row of features")
        values = {n: table.column(n).to_pylist() for n in names}
        for row, index in zip(rows, picked):
            row[spec.name] = _typed([values[n][index] for n in names], spec.datatype).reshape(shape)
    return rows


# -- recording and checking --------------------------------------------------------------------

def _encode(array: np.ndarray, datatype: str) -> dict[str, Any]:
    data = array.tolist()
    if datatype == "BYTES":
        data = np.vectorize(lambda b: b.decode("utf-8", "backslashreplace") if isinstance(b, bytes) else str(b),
                            otypes=[object])(array).tolist()
    return {"datatype": datatype, "shape": list(array.shape), "data": data}


def _decode(tensor: dict[str, Any]) -> np.ndarray:
    flat = np.array(tensor["data"], dtype=object).reshape(-1).tolist()
    return _typed(flat, tensor["datatype"]).reshape(tensor["shape"])


def _score(adapter: FreshAdapter, package: ModelPackage, row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    signature = package.manifest.signature
    return adapter.infer(package.name, package.version, row, {s.name: s.datatype for s in signature.inputs},
                         [s.name for s in signature.outputs])


def record(package: ModelPackage, rows: list[dict[str, np.ndarray]], tolerance: float) -> dict[str, Any]:
    """Score ROWS in a fresh adapter of PACKAGE: the golden examples (raises LoadFailed)."""
    signature = package.manifest.signature
    examples = []
    with FreshAdapter(package.directory) as adapter:
        for row in rows:
            outputs = _score(adapter, package, row)
            examples.append({
                "inputs": {s.name: _encode(row[s.name], s.datatype) for s in signature.inputs},
                "outputs": {s.name: _encode(outputs[s.name], s.datatype) for s in signature.outputs}})
    return {"tolerance": tolerance, "examples": examples}


def write(package_dir: Path, golden: dict[str, Any]) -> Path:
    path = package_dir / FILE_NAME
    path.write_text(json.dumps(golden, indent=1) + "\n")
    return path


@dataclass
class Mismatch:
    example: int
    output: str
    expected: Any
    got: Any
    difference: float  # inf for unequal text


@dataclass
class GoldenResult:
    tolerance: float
    passed: int = 0
    failed: int = 0
    worst: Mismatch | None = None  # the row farthest from its recorded output
    errors: list[str] = field(default_factory=list)  # examples the model refused to score

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.errors

    def describe(self) -> str:
        total = self.passed + self.failed + len(self.errors)
        text = f"{self.passed} of {total} golden examples within tolerance {self.tolerance:g}"
        if self.worst is not None and self.failed:
            w = self.worst
            text += (f"; worst: example {w.example + 1}, output '{w.output}': expected {w.expected}, "
                     f"got {w.got} (difference {w.difference:.6g})")
        if self.errors:
            text += f"; {len(self.errors)} refused: {self.errors[0]}"
        return text


def _difference(expected: np.ndarray, got: np.ndarray, tolerance: float) -> tuple[bool, float]:
    if expected.shape != got.shape:
        return False, float("inf")
    if expected.dtype == object or got.dtype == object or expected.dtype == np.bool_:
        equal = bool(np.all(expected.astype(object) == got.astype(object)))
        return equal, 0.0 if equal else float("inf")
    want, have = expected.astype(np.float64), got.astype(np.float64)
    close = np.isclose(have, want, rtol=tolerance, atol=tolerance, equal_nan=True)
    difference = np.abs(have - want)
    return bool(np.all(close)), float(np.nanmax(difference)) if difference.size else 0.0


def load(package: ModelPackage) -> dict[str, Any] | None:
    if package.manifest.golden is None:
        return None
    path = package.path(package.manifest.golden)
    try:
        golden = json.loads(path.read_text())
        golden["examples"] = list(golden["examples"])
        float(golden["tolerance"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(str(path), "golden", f"not a golden examples file ({exc})",
                            "record them again with `meshserve package DIR --golden-from FILE`") from exc
    return golden


def check(adapter: FreshAdapter, package: ModelPackage, golden: dict[str, Any]) -> GoldenResult:
    """Score every golden example in ADAPTER (already loaded with PACKAGE) and compare."""
    from meshserve.deploy.fresh_adapter import infer_error

    tolerance = float(golden["tolerance"])
    result = GoldenResult(tolerance=tolerance)
    for index, example in enumerate(golden["examples"]):
        row = {name: _decode(tensor) for name, tensor in example["inputs"].items()}
        try:
            got = _score(adapter, package, row)
        except Exception as exc:
            result.errors.append(infer_error(exc))
            continue
        row_ok = True
        for name, tensor in example["outputs"].items():
            expected = _decode(tensor)
            have = got.get(name)
            if have is None:
                ok, difference, shown = False, float("inf"), "(no such output)"
            else:
                ok, difference = _difference(expected, have, tolerance)
                shown = _encode(have, tensor["datatype"])["data"]
            if not ok:
                row_ok = False
                if result.worst is None or difference > result.worst.difference:
                    result.worst = Mismatch(index, name, tensor["data"], shown, difference)
        if row_ok:
            result.passed += 1
        else:
            result.failed += 1
    return result
