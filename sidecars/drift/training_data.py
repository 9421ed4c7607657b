"""Training data for a baseline: a table file (CSV, Parquet, JSON lines, ...) whose columns are
the package's columns.

Input columns must all be there (named as in columns.py: feature names, tensor names, or
NAME_0 ... for unnamed columns). An output whose columns are in the file is taken from it (for
example a label column); any other output is what the model itself answers for those rows,
computed by the package's runtime where `meshserve up` runs it (here, or in a fresh adapter in the
package's own Python environment), so a baseline of the outputs needs no hand-written scoring
code in any language.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from meshserve.sidecars.drift.columns import columns_of

from meshserve.core import tabular_files
from meshserve.core.datatypes import NUMPY_DTYPES
from meshserve.core.errors import ManifestError

PREDICT_ROWS = 1000  # rows per predict call when the model scores the training data


def read_table(path: Path) -> dict[str, list]:
    """Column name -> values, from any table file meshserve reads (meshserve.core.tabular_files)."""
    return tabular_files.read_table(path).to_pydict()


def _missing_column(path: Path, table: dict[str, list], tensor: str, column: str) -> ManifestError:
    have = ", ".join(list(table)[:8]) + (", ..." if len(table) > 8 else "")
    return ManifestError(str(path), column, f"no column '{column}' (of input '{tensor}') in the training data; "
                         f"it has {have}", f"add a column named '{column}' (columns are named after the "
                         "signature's feature names, see docs/drift.md)")


def _tensor(spec: Any, table: dict[str, list]) -> np.ndarray:
    names = columns_of(spec)
    dtype = NUMPY_DTYPES[spec.datatype]
    if spec.datatype == "BYTES":
        convert = lambda values: np.asarray([v.encode() if isinstance(v, str) else v for v in values], dtype=object)
    else:
        convert = lambda values: np.asarray([np.nan if v is None else v for v in values]).astype(dtype)
    if len(spec.shape) == 1:
        return convert(table[names[0]])
    return np.stack([convert(table[name]) for name in names], axis=1)


def _predicted(package: Any, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """What the model answers for the rows: where `meshserve up` would run it, so a model that needs
    libraries only its own environment holds (model.yaml's `environment.python`) is scored there."""
    from meshserve.environments.environment_spec import spec_for

    if spec_for(package) is not None:
        return _predicted_in_own_environment(package, inputs, rows)
    return _predicted_here(package, inputs, rows)


def _predicted_in_own_environment(package: Any, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """Scored by a fresh adapter in the package's environment (built first, with its progress shown,
    when the cache does not hold it), as `meshserve check` loads it."""
    from meshserve.deploy.fresh_adapter import FreshAdapter, LoadFailed, infer_error

    signature = package.manifest.signature
    datatypes = {spec.name: spec.datatype for spec in signature.inputs}
    outputs = [spec.name for spec in signature.outputs]
    where = str(package.manifest_path)
    try:
        with FreshAdapter(package.directory) as adapter:
            parts = []
            for start in range(0, rows, PREDICT_ROWS):
                batch = {name: array[start:start + PREDICT_ROWS] for name, array in inputs.items()}
                try:
                    parts.append(adapter.infer(package.name, package.version, batch, datatypes, outputs))
                except Exception as exc:
                    raise ManifestError(where, "(model)", f"the model could not score rows {start + 1} to "
                                        f"{start + len(next(iter(batch.values())))} of the training data in its "
                                        f"own environment: {infer_error(exc)}",
                                        "fix the model or the data, or pass --no-score") from None
    except LoadFailed as exc:
        raise ManifestError(where, "(model)", f"the model does not load in its own environment to score the training "
                            f"data: {exc}", "fix the package (`meshserve check DIR` shows the same), or pass "
                            "--no-score and give the outputs as columns of the data") from None
    return {name: np.concatenate([np.asarray(p[name]) for p in parts]) for name in outputs} if parts else {}


def _predicted_here(package: Any, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    from meshserve.adapters.runtime import create_runtime

    async def score() -> dict[str, np.ndarray]:
        runtime = create_runtime(package)
        await runtime.load(package)
        try:
            parts = [await runtime.predict({k: v[i:i + PREDICT_ROWS] for k, v in inputs.items()})
                     for i in range(0, rows, PREDICT_ROWS)]
        finally:
            await runtime.close()
        return {name: np.concatenate([np.asarray(p[name]) for p in parts]) for name in parts[0]} if parts else {}

    return asyncio.run(score())


def baseline_columns(package: Any, table: dict[str, list], source: str,
                     score_outputs: bool = True) -> Iterator[tuple[str, str, str, str, list]]:
    """(role, tensor, column, datatype, values) for every monitored column of PACKAGE in TABLE
    (column name -> values), read from SOURCE (named in errors)."""
    path = Path(source)
    rows = len(next(iter(table.values()), []))
    signature = package.manifest.signature
    inputs: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        names = columns_of(spec)
        if names is None:
            continue
        for column in names:
            if column not in table:
                raise _missing_column(path, table, spec.name, column)
        inputs[spec.name] = _tensor(spec, table)
    from_file = {spec.name for spec in signature.outputs
                 if columns_of(spec) and all(c in table for c in columns_of(spec))}
    unmonitored = [s.name for s in signature.inputs if columns_of(s) is None]
    scored: dict[str, np.ndarray] = {}
    if score_outputs and not unmonitored and any(s.name not in from_file for s in signature.outputs):
        scored = _predicted(package, inputs, rows)
    for role, specs in (("input", signature.inputs), ("output", signature.outputs)):
        for spec in specs:
            names = columns_of(spec)
            if names is None or spec.pii:
                continue
            if role == "output" and spec.name not in from_file:
                if spec.name not in scored:
                    continue
                array = scored[spec.name]
                for j, column in enumerate(names):
                    yield role, spec.name, column, spec.datatype, (array if array.ndim == 1 else array[:, j]).tolist()
                continue
            for column in names:
                yield role, spec.name, column, spec.datatype, table[column]
