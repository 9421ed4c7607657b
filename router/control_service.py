"""The meshserve.v1.Control service: what is served, and how traffic is split."""

from __future__ import annotations

import grpc

from meshserve.errors import MeshError, abort
from meshserve.router.model_table import ModelEntry, ModelTable
from meshserve.v1 import control_pb2 as cpb
from meshserve.v1 import control_pb2_grpc as cpb_grpc


def _tensor(spec) -> cpb.TensorSpec:
    return cpb.TensorSpec(name=spec.name, datatype=spec.datatype, shape=spec.shape, features=spec.features or [])


class ControlServicer(cpb_grpc.ControlServicer):
    def __init__(self, table: ModelTable, ready):
        self.table = table
        self._ready = ready  # coroutine (name, version) -> bool, the inference service's check

    async def ListModels(self, request, context):
        return cpb.ListModelsResponse(models=[await self._model(m) for m in self.table.models.values()])

    async def GetModel(self, request, context):
        try:
            return await self._model(self.table.model(request.name))
        except MeshError as exc:
            await abort(context, exc)

    async def GetRollout(self, request, context):
        try:
            return self._rollout(self.table.model(request.model))
        except MeshError as exc:
            await abort(context, exc)

    async def SetRollout(self, request, context):
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                            "live rollouts need the mesh to run Envoy in front of the adapters")

    def _rollout(self, model: ModelEntry) -> cpb.Rollout:
        return cpb.Rollout(model=model.name, weights={model.default_version: 100})

    async def _model(self, model: ModelEntry) -> cpb.Model:
        versions = []
        for version, entry in model.versions.items():
            manifest = entry.package.manifest
            versions.append(cpb.ModelVersion(
                version=version, runtime=manifest.runtime, description=manifest.description,
                inputs=[_tensor(s) for s in manifest.signature.inputs],
                outputs=[_tensor(s) for s in manifest.signature.outputs],
                ready=await self._ready(model.name, version), package_path=str(entry.package.directory)))
        return cpb.Model(name=model.name, versions=versions, rollout=self._rollout(model))
