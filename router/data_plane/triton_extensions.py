"""The router's answers to Triton's extensions of the protocol, apart from inference itself.

ModelConfig (each model as Triton would describe it), ModelStatistics (every replica summed),
RepositoryIndex (what is served, and what was found but is not, with the reason), and
RepositoryModelLoad/Unload refused with the way meshserve changes what is live. Shared memory,
trace and log settings answer UNIMPLEMENTED (core/unserved_methods.py). ServerMetadata lists
exactly the extensions served, from `served_extensions`.
"""

from __future__ import annotations

import asyncio

import grpc
from tritonclient.grpc import service_pb2 as pb

from meshserve.core.errors import MeshError, abort
from meshserve.core.mesh_protocol import model_config
from meshserve.core.unserved_methods import UnservedMethods
from meshserve.router.data_plane.statistics import mesh_statistics

# Triton's extension names, each with the front that serves it: "grpc" always, "rest" only when
# the router also serves Open Inference Protocol REST.
EXTENSIONS = (
    ("classification", "grpc"),
    ("model_configuration", "grpc"),
    ("model_repository", "grpc"),
    ("statistics", "grpc"),
    ("parameters", "grpc"),
    ("binary_tensor_data", "rest"),
)
READY, UNAVAILABLE = "READY", "UNAVAILABLE"
LOAD_REFUSED = ("meshserve does not {verb} models on request: the versions it serves come from the model packages "
                "and meshserve.yaml, started by `meshserve up`; to change which version answers, use "
                "`meshserve rollout MODEL --weights VERSION=100` (or SetRollout on the control API)")
CONFIG_TIMEOUT_S = 5.0


def served_extensions(fronts: frozenset[str] = frozenset({"grpc"})) -> list[str]:
    """The extensions served by a router with these FRONTS ("grpc", "rest")."""
    return [name for name, front in EXTENSIONS if front in fronts]


class TritonExtensions(UnservedMethods):
    """Mixed into the router's servicer, which gives it `forwarder`, `access` and `_authorize`."""

    async def ModelConfig(self, request, context):
        await self._authorize(context, request.name)
        try:
            _, entry = self.forwarder.package_entry(request.name, request.version)
            if not entry.package.options.config_from_server:
                return model_config(entry.package)
            # The model's own server keeps its configuration (Triton's config.pbtxt); its adapter fetches it.
            return await self.forwarder.upstreams.stub(entry.address).ModelConfig(
                pb.ModelConfigRequest(name=entry.package.name, version=entry.package.version),
                timeout=CONFIG_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            await abort(context, MeshError.from_status(exc.code(), exc.details()))
        except MeshError as exc:
            await abort(context, exc)

    async def ModelStatistics(self, request, context):
        if request.name:
            await self._authorize(context, request.name)
        try:
            return await mesh_statistics(self.forwarder.table, self.forwarder.upstreams, request.name, request.version,
                                         visible=lambda model: self._may_call(context, model))
        except MeshError as exc:
            await abort(context, exc)

    async def RepositoryIndex(self, request, context):
        table = self.forwarder.table
        index = pb.RepositoryIndexResponse.ModelIndex
        served = [(model.name, version) for model in table.models.values() if self._may_call(context, model.name)
                  for version in model.versions]
        readiness = await asyncio.gather(*(self.forwarder.ready(name, version) for name, version in served))
        models = [index(name=name, version=version, state=READY if ready else UNAVAILABLE,
                        reason="" if ready else "no replica is ready (starting or restarting); retry shortly")
                  for (name, version), ready in zip(served, readiness) if ready or not request.ready]
        if not request.ready:
            models += [index(name=u.name, version=u.version, state=UNAVAILABLE, reason=u.reason)
                       for u in table.unavailable if self._may_call(context, u.name)]
        return pb.RepositoryIndexResponse(models=models)

    def _may_call(self, context, model: str) -> bool:
        """Whether the caller may see MODEL: lists show only the models a principal may call."""
        try:
            self.access.check(context.invocation_metadata(), model)
        except MeshError:
            return False
        return True

    async def RepositoryModelLoad(self, request, context):
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, LOAD_REFUSED.format(verb="load"))

    async def RepositoryModelUnload(self, request, context):
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, LOAD_REFUSED.format(verb="unload"))
