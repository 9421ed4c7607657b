"""An MLflow pyfunc model, loaded with `mlflow.pyfunc.load_model` from the package's MLflow model folder.

It runs in the package's own environment, whose requirements (from MLflow's requirements.txt) include
mlflow itself. A column-based MLflow signature gets a pandas DataFrame of its columns, built from the
named inputs as for DataFrame pipelines (frames.py); a tensor-based one gets its array (or a dict of
arrays). The answer (array, Series, DataFrame or dict) is split into the declared outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from meshserve.adapters.python.frames import FramePlan
from meshserve.adapters.runtime import Tensors

from meshserve.core.datatypes import NUMPY_DTYPES
from meshserve.core.errors import ManifestError, MeshError
from meshserve.core.model_package import ModelPackage


def check_pyfunc_package(package: ModelPackage) -> None:
    """A pyfunc folder needs mlflow where it runs: its own environment must pin it."""
    recorded = ((package.manifest.environment or {}).get("python") or {}).get("requirements") or []
    names = {str(r).split("==")[0].strip().lower() for r in recorded}
    if not names & {"mlflow", "mlflow-skinny"}:
        raise ManifestError(str(package.manifest_path), "environment.python.requirements",
                            "an MLflow pyfunc model is loaded by mlflow, and no mlflow pin is recorded",
                            "import it with `meshserve import models:/NAME/VERSION`, which records the model's "
                            "requirements.txt (mlflow included)")


class PyfuncModel:
    def __init__(self, package: ModelPackage):
        import mlflow.pyfunc

        where = str(package.manifest_path)
        try:
            self._model = mlflow.pyfunc.load_model(str(package.path(package.manifest.entrypoint)))
        except Exception as exc:  # whatever the model's own loader raises: it cannot be served
            raise ManifestError(where, "entrypoint", f"mlflow.pyfunc.load_model failed ({type(exc).__name__}: {exc})",
                                "check that the model loads in the environment it was logged from") from None
        schema = self._model.metadata.get_input_schema()
        self._frame = None
        if schema is not None and not schema.is_tensor_spec():
            self._frame = FramePlan.for_columns([str(n) for n in schema.input_names()], package,
                                                "the MLflow signature names")
        self._inputs = [i.name for i in package.manifest.signature.inputs]
        self._outputs = package.manifest.signature.outputs

    def __call__(self, inputs: Tensors) -> Tensors:
        if self._frame is not None:
            data: Any = self._frame.frame(inputs)
        elif len(self._inputs) == 1:
            data = inputs[self._inputs[0]]
        else:
            data = {name: inputs[name] for name in self._inputs}
        return self._split(self._model.predict(data))

    def _split(self, answer: Any) -> Tensors:
        import pandas as pd

        outputs = {}
        for spec in self._outputs:
            if isinstance(answer, dict):
                value = answer.get(spec.name)
            elif isinstance(answer, pd.DataFrame):
                value = answer[spec.name] if spec.name in answer.columns else (
                    answer.iloc[:, 0] if len(self._outputs) == 1 and answer.shape[1] == 1 else None)
            else:
                value = answer if len(self._outputs) == 1 else None
            if value is None:
                raise MeshError(f"the pyfunc model's answer has no output '{spec.name}' ({type(answer).__name__})")
            array = np.asarray(value.to_numpy() if isinstance(value, (pd.Series, pd.DataFrame)) else value)
            if array.ndim == len(spec.shape) + 1 and array.shape[-1] == 1:
                array = array.reshape(array.shape[:-1])
            dtype = NUMPY_DTYPES[spec.datatype]
            outputs[spec.name] = (np.array([str(v).encode() if not isinstance(v, bytes) else v for v in array.ravel()],
                                           dtype=object).reshape(array.shape)
                                  if dtype == np.dtype(object) else array.astype(dtype, copy=False))
        return outputs
