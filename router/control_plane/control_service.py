"""The meshserve.v1.Control service: what is served, and how traffic is split."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from meshserve.core.errors import ManifestError, MeshError, abort
from meshserve.router.deployment_spec import DeploymentSpec, Rollout
from meshserve.envoy.admin import EnvoyAdmin, EnvoyError
from meshserve.envoy.layout import EnvoyLayout
from meshserve.envoy.rollouts import LiveRollouts
from meshserve.router.model_table import ModelEntry, ModelTable
from meshserve.v1 import control_pb2 as cpb
from meshserve.v1 import control_pb2_grpc as cpb_grpc


def _tensor(spec) -> cpb.TensorSpec:
    return cpb.TensorSpec(name=spec.name, datatype=spec.datatype, shape=spec.shape, features=spec.features or [])


class ControlServicer(cpb_grpc.ControlServicer):
    def __init__(self, table: ModelTable, ready):
        self.table = table
        self._ready = ready  # coroutine (name, version) -> bool, the inference service's check
        self.rollouts = live_rollouts(table)  # None when the mesh runs without Envoy

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
        """Replace a model's weights and shadows; returns once Envoy serves the new split.

        An empty weights map keeps the current weights (no split has zero total weight),
        so a caller can change only the shadows; shadows are always replaced.
        """
        if self.rollouts is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                "live rollouts need the mesh to run Envoy in front of the adapters "
                                "(started with --no-envoy)")
        wanted = request.rollout
        try:
            self.table.model(wanted.model)
            applied = self.rollouts.apply(wanted.model, dict(wanted.weights) or None, dict(wanted.shadows))
            await asyncio.to_thread(self.envoy_admin.wait_for_routes, self.rollouts.version_info)
        except ManifestError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"rollout refused: {exc.problem} ({exc.field}). "
                                                                  f"Fix: {exc.fix}")
        except EnvoyError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except MeshError as exc:
            await abort(context, exc)
        return _rollout_message(wanted.model, applied)

    def weights_in_force(self, model: str) -> str:
        """The model's live split as spans show it: "1=90,2=10", with shadows as "shadow 3=0.1"."""
        if self.rollouts is None or model not in self.table.models:
            return ""
        try:
            rollout = self.rollouts.current(model)
        except MeshError:
            return ""
        weights = ",".join(f"{v}={w}" for v, w in rollout.weights.items())
        shadows = ",".join(f"{v}={f:g}" for v, f in rollout.shadows.items())
        return weights + (f" shadow {shadows}" if shadows else "")

    def _rollout(self, model: ModelEntry) -> cpb.Rollout:
        if self.rollouts is not None:
            return _rollout_message(model.name, self.rollouts.current(model.name))
        return cpb.Rollout(model=model.name, weights={model.default_version: 100})

    @property
    def envoy_admin(self) -> EnvoyAdmin:
        return EnvoyAdmin(self.rollouts.layout.admin)

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


def _rollout_message(model: str, rollout: Rollout) -> cpb.Rollout:
    return cpb.Rollout(model=model, weights=rollout.weights, shadows=rollout.shadows)


def live_rollouts(table: ModelTable) -> LiveRollouts | None:
    """The live split, when `meshserve up` runs Envoy and wrote where its files are."""
    control = table.control or {}
    if "envoy" not in control:
        return None
    envoy = control["envoy"]
    layout = EnvoyLayout(Path(envoy["run_dir"]), front=envoy["front"], mesh=envoy["mesh"], admin=envoy["admin"])
    spec = DeploymentSpec.model_validate_json(Path(control["deployment"]).read_text())
    return LiveRollouts(spec, layout, state_path=Path(control["rollout_state"]))
