"""The meshserve.v1.Control service: what is served, and how traffic is split."""

from __future__ import annotations

import asyncio
import json
import threading

import grpc

from meshserve.core.errors import ManifestError, MeshError, abort, quoted
from meshserve.core.mesh_secret import mesh_secret
from meshserve.core.settings import get_settings
from meshserve.envoy.routing import EnvoyError, LiveRouting
from meshserve.router.control_plane import records_reads
from meshserve.router.control_plane.progressive import RolloutController
from meshserve.router.data_plane.authorization import ModelAccess, principal_of
from meshserve.sidecars.drift.api import open_alert_messages
from meshserve.sidecars.records.api import audit, open_store, outcomes_from_messages, to_message
from meshserve.spec.deployment_log import DeploymentLog, caller_of
from meshserve.spec.deployment_spec import Rollout
from meshserve.spec.model_table import ModelEntry, ModelTable
from meshserve.spec.table_control import TableControl
from meshserve.v1 import control_pb2 as cpb
from meshserve.v1 import control_pb2_grpc as cpb_grpc


def _tensor(spec) -> cpb.TensorSpec:
    return cpb.TensorSpec(name=spec.name, datatype=spec.datatype, shape=spec.shape, features=spec.features or [])


class ControlServicer(cpb_grpc.ControlServicer):
    def __init__(self, table: ModelTable, ready):
        self.table = table
        self._ready = ready  # coroutine (name, version) -> bool, the inference service's check
        self.rollouts = live_routing(table.control)  # None when the mesh runs without Envoy
        self._store = None  # opened on the first GetRecords
        self._store_lock = threading.Lock()
        self.log = DeploymentLog(table.control.deployment_log)
        self.security = ModelAccess.from_control(table.control).security
        self.controller = self._controller(table.control)

    def _controller(self, control: TableControl) -> RolloutController | None:
        """The progressive-delivery controller, when some model has a rollout plan."""
        if self.rollouts is None or control.progressive_state is None or not control.records_store:
            return None
        if not any(d.rollout_plan for d in self.rollouts.spec.models.values()):
            return None
        url = control.records_store

        def drift_alerts(model: str, version: str) -> list[str]:  # what the recorder's drift monitor holds open
            store = open_store(url)
            try:
                return open_alert_messages(store, model, version)
            finally:
                store.close()

        return RolloutController(self.rollouts.spec, self.rollouts, lambda: open_store(url),
                                 control.progressive_state, self.log, drift_alerts=drift_alerts)

    async def start_background(self) -> None:
        """Start what runs beside the control service: the rollout controller, if any plan exists,
        and the judging metrics (shadow agreement, live quality) when metrics are on."""
        url = self.table.control.records_store
        if url and get_settings().metrics_listen:
            from meshserve.observability.judging_metrics import keep_publishing

            thresholds = {m: d.quality for m, d in self.rollouts.spec.models.items()} if self.rollouts else {}
            self._judging_task = asyncio.get_running_loop().create_task(
                keep_publishing(lambda: open_store(url), self._versions_served, thresholds=thresholds))
        if self.controller is not None:
            await asyncio.to_thread(self.controller.start)
            self._controller_task = asyncio.get_running_loop().create_task(self.controller.run())

    def _versions_served(self) -> dict[str, int]:
        return {name: len(model.versions) for name, model in self.table.models.items()}

    async def GetRolloutStatus(self, request, context):
        if self.controller is None or request.model not in self.controller.plans:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"model '{request.model[:200]}' has no rollout_plan in meshserve.yaml "
                                "(see docs/operator-guide.md, 'Progressive delivery')")
        status = self.controller.status(request.model)
        status["log"] = [e for e in self.log.entries(request.model) if "what" in e][-50:]
        return cpb.RolloutStatus(model=request.model, status_json=json.dumps(status))

    async def ActOnRollout(self, request, context):
        if self.controller is None or request.model not in self.controller.plans:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"model '{request.model[:200]}' has no rollout_plan in meshserve.yaml")
        try:
            caller = caller_of(context.invocation_metadata(), context.peer())
            await asyncio.to_thread(self.controller.act, request.model, request.action,
                                    f"{caller['principal']} from {caller['peer']} (control API)")
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"action: {exc}")
        return await self.GetRolloutStatus(request, context)

    async def GetComparison(self, request, context):
        """Shadows and canaries against their primary (router/control_plane/records_reads.py)."""
        return await records_reads.get_comparison(self, request, context)

    async def ListModels(self, request, context):
        paths = self._shows_paths(context)
        return cpb.ListModelsResponse(models=[await self._model(m, paths) for m in list(self.table.models.values())],
                                      models_dir=self.table.control.models_dir if paths else "")

    async def GetModel(self, request, context):
        try:
            return await self._model(self.table.model(request.name), self._shows_paths(context))
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
                                "(started with --no-envoy), or on Kubernetes a new Envoy ConfigMap "
                                "(see docs/kubernetes.md, 'Rollouts on the cluster')")
        wanted = request.rollout
        caller = caller_of(context.invocation_metadata(), context.peer())
        asked = {"model": quoted(wanted.model), "weights": dict(wanted.weights), "shadows": dict(wanted.shadows)}
        try:
            self.table.model(wanted.model)
            applied = await asyncio.to_thread(self.rollouts.apply, wanted.model, dict(wanted.weights) or None,
                                              dict(wanted.shadows))
        except ManifestError as exc:
            self.log.append(caller, "SetRollout", "refused", **asked, reason=exc.problem)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"rollout refused: {exc.problem} ({exc.field}). "
                                                                  f"Fix: {exc.fix}")
        except EnvoyError as exc:
            self.log.append(caller, "SetRollout", "failed", **asked, reason=str(exc))
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except MeshError as exc:
            self.log.append(caller, "SetRollout", "refused", **asked, reason=exc.message)
            await abort(context, exc)
        self.log.append(caller, "SetRollout", "applied", **asked,
                        applied={"weights": dict(applied.weights), "shadows": dict(applied.shadows)})
        return _rollout_message(wanted.model, applied)

    async def Deploy(self, request, context):
        """A running version takes a role once the validation gate passes (deploy_service.py)."""
        from meshserve.router.control_plane.deploy_service import deploy

        return await deploy(self, request, context)

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

    async def GetRecords(self, request, context):
        """Every record of one request, read from the store the mesh's recorder fills."""
        url = self.table.control.records_store
        if not url:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                "this mesh keeps no records (records.enabled is false in meshserve.yaml)")
        if not request.request_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request_id: give the id of a past request")
        try:
            records = await asyncio.to_thread(self._audit, url, request.request_id)
        except Exception as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"the records store cannot be read now: {exc}")
        return cpb.GetRecordsResponse(records=[to_message(r) for r in records])

    async def RecordOutcomes(self, request, context):
        """Ground truth for past requests, stored beside their records (sidecars/records/outcomes.py)."""
        url = self.table.control.records_store
        if not url:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                "this mesh keeps no records (records.enabled is false in meshserve.yaml)")
        try:
            return await asyncio.to_thread(self._record_outcomes, url, list(request.outcomes))
        except Exception as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"the records store cannot be written now: {exc}")

    async def GetDrift(self, request, context):
        """The drift of a model's columns and its alerts (router/control_plane/records_reads.py)."""
        return await records_reads.get_drift(self, request, context)

    async def GetQuality(self, request, context):
        return await records_reads.get_quality(self, request, context)

    async def ImportOutcomes(self, request, context):
        return await records_reads.import_outcomes(self, request, context)

    async def Explain(self, request, context):
        return await records_reads.explain(self, request, context)

    async def ExportRecords(self, request, context):
        async for page in records_reads.export_records(self, request, context):
            yield page

    def _record_outcomes(self, url: str, outcomes: list) -> cpb.RecordOutcomesResponse:
        with self._store_lock:
            if self._store is None:
                self._store = open_store(url)
            accepted, refused = outcomes_from_messages(self._store, outcomes)
            known, recorded = self._store.save_outcomes(accepted)
        ids = {o[0] for o in accepted}
        return cpb.RecordOutcomesResponse(stored=len(ids), matched=len(ids & recorded), unknown=len(ids - recorded),
                                          replaced=len(ids & known), refused=refused)

    def _audit(self, url: str, request_id: str) -> list[dict]:
        with self._store_lock:  # one connection, used from worker threads one at a time
            if self._store is None:
                self._store = open_store(url)
            return audit(self._store, request_id)

    def _rollout(self, model: ModelEntry) -> cpb.Rollout:
        if self.rollouts is not None:
            return _rollout_message(model.name, self.rollouts.current(model.name))
        return cpb.Rollout(model=model.name, weights={model.default_version: 100})

    def _shows_paths(self, context) -> bool:
        """Package paths on disk are for admins: a caller Envoy let in as a principal sees them only
        when that principal is an admin; a trusted peer without a principal (control_from) sees them."""
        principal = principal_of(context.invocation_metadata())
        if principal is None:
            return True
        rules = self.security.principals.get(principal)
        return rules is not None and rules.admin

    async def _model(self, model: ModelEntry, show_paths: bool = True) -> cpb.Model:
        versions = []
        for version, entry in model.versions.items():
            manifest = entry.package.manifest
            versions.append(cpb.ModelVersion(
                version=version, runtime=manifest.runtime, description=manifest.description,
                inputs=[_tensor(s) for s in manifest.signature.inputs],
                outputs=[_tensor(s) for s in manifest.signature.outputs],
                ready=await self._ready(model.name, version), package_path=str(entry.package.directory) if show_paths else "",
                digest=entry.package.digest))
        return cpb.Model(name=model.name, versions=versions, rollout=self._rollout(model))


def _rollout_message(model: str, rollout: Rollout) -> cpb.Rollout:
    return cpb.Rollout(model=model, weights=rollout.weights, shadows=rollout.shadows)


def live_routing(control: TableControl) -> LiveRouting | None:
    """The live split, when `meshserve up` runs Envoy and wrote where its files are."""
    if control.envoy is None or control.deployment is None:
        return None
    # The routes the router rewrites carry the mesh secret on to the mesh's servers.
    return LiveRouting.for_mesh(control.envoy, control.deployment, control.rollout_state, mesh_secret())
