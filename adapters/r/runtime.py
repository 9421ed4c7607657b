"""The R runtime: serve an R team's saved model (an .rds) and their predict function via rpy2.

The `r:` section of model.yaml (validated by `ROptions`, options.py) says which file holds the
model, which R packages it needs, which function scores it, and how the V2 inputs become the
columns of the data.frame R's predict expects (name, type, factor levels, missing values).

Requests are checked in Python against those column types before R sees them (R models
often return wrong numbers rather than an error for a wrongly typed column), packed into
one numpy matrix per R type, and scored on the process's single R thread (r_session.py), or
by R worker processes forked after the model loads (r_workers.py, `r.workers: N`).
Importing this module does not start R; `load()` does.
"""

from __future__ import annotations

import logging
from typing import Any

from meshserve.adapters.runtime import Runtime, Tensors
from meshserve.core.errors import InvalidInput, MeshError, ModelFailed, ModelUnavailable
from meshserve.core.model_package import ModelPackage

from .options import ROptions, r_set_up_problems

__all__ = ["ROptions", "RRuntime"]

log = logging.getLogger("meshserve.adapters.r")


class RRuntime(Runtime):
    """One R model: scored on the process's R thread, or by forked R workers."""

    def __init__(self) -> None:
        self._model: Any = None  # r_model.RModel, created on the R thread
        self._plan: Any = None
        self._outputs: Any = None
        self._session: Any = None
        self._workers: Any = None  # r_workers.RWorkerPool when r.workers > 0

    async def load(self, package: ModelPackage) -> None:
        from .columns import ColumnPlan
        from .environment import check_environment
        from .model import RModel
        from .results import OutputPlan
        from .session import r_session

        self.package = package
        options: ROptions = package.options  # type: ignore[assignment]
        self._plan = ColumnPlan.build(options, package)
        self._outputs = OutputPlan(package.manifest.signature.outputs, options.outputs)
        self._session = r_session()
        with r_set_up_problems(package):
            # Check versions first: under strict there is no point loading a model that is refused.
            for warning in await self._session.call(check_environment, package, options):
                log.warning("%s", warning)
            self._model = await self._session.call(RModel.load, package, options, self._plan)
        self._plan = self._model.plan  # factors on the model's own levels
        if options.workers:
            from .workers import RWorkerPool

            self._workers = RWorkerPool(self._session, self._model, options.workers)
            await self._workers.start()

    async def predict(self, inputs: Tensors) -> Tensors:
        if self._model is None:
            raise ModelUnavailable(f"R model {self.package.name} is not loaded")
        frame_parts = self._plan.pack(inputs)  # InvalidInput before R sees anything
        if frame_parts.rows == 0:
            return self._outputs.empty()
        try:
            if self._workers is not None:
                columns = await self._workers.score(frame_parts)
            else:
                columns = await self._session.call(self._model.score, frame_parts)
        except MeshError:
            raise
        except Exception as exc:
            raise _r_error(exc, self.package, self._model.facts) from exc
        return self._outputs.to_tensors(columns, frame_parts.rows)

    async def ready(self) -> bool:
        return self._model is not None

    async def close(self) -> None:
        if self._workers is not None:
            workers, self._workers = self._workers, None
            await workers.close()
        if self._model is not None:
            model, self._model = self._model, None
            await self._session.call(model.release)


def _r_error(exc: Exception, package: ModelPackage, facts: Any) -> MeshError:
    """R's own message, without rpy2's wrapping: INVALID_ARGUMENT where the model's code said the
    input is at fault (an `invalid_input` condition), INTERNAL otherwise, followed by the
    model.yaml fix when the package is at fault (predict_errors.py)."""
    from .model import INVALID_INPUT_MARK
    from .predict_errors import package_hint

    message = str(exc).strip()
    if INVALID_INPUT_MARK in message:
        return InvalidInput(None, message.split(INVALID_INPUT_MARK, 1)[1].strip())
    for prefix in ("Error in ", "Error: "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    hint = package_hint(message, package, facts)
    return ModelFailed(f"R error: {message}" + (f"; {hint}" if hint else ""))

