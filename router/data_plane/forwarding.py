"""What the router does with each inference, free of gRPC's server side: resolve the model and
version, check the request against the signature, set the mesh's headers, forward it within
the caller's deadline (to the adapter, or to Envoy's mesh listener, which picks the variant),
and tell the observers.

The servicer in inference_service.py only reads the call's metadata and deadline, and turns
errors into status codes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import grpc
from tritonclient.grpc import service_pb2 as pb

from meshserve.core.classification import class_counts
from meshserve.core.errors import AtCapacity, DeadlineExceeded, MeshError, ModelUnavailable
from meshserve.core.mesh_protocol import (
    ROLE_PARAMETER, VARIANT_HEADER, CallInfo, Metadata, forwarded_headers, routing_headers)
from meshserve.core.observers import InferenceEvent, Observers
from meshserve.core.request_parameters import check_shared_memory, request_timeout_s, with_request_timeout
from meshserve.core.settings import get_settings
from meshserve.core.signature_check import check_request
from meshserve.router.data_plane.upstreams import Upstreams, upstream_error
from meshserve.spec.model_table import ModelTable, VersionEntry

READY_TIMEOUT_S = 2.0
# How often a request held for a variant's cold start asks Envoy again whether a replica is up.
COLD_START_POLL_S = 0.2


class Forwarder:
    def __init__(self, table: ModelTable, upstreams: Upstreams | None = None, observers: Observers | None = None):
        self.table = table
        self.upstreams = upstreams or Upstreams()
        self.observers = observers or Observers()
        # Variants that scale to zero when idle (`replicas: {min: 0}`): a request that finds no
        # replica waits for the one the launcher starts when Envoy counts it, within its deadline.
        self.cold_variants = set(table.control.cold_variants)

    def package_entry(self, name: str, version: str) -> tuple[list[str], VersionEntry]:
        """The versions a model serves and the entry of VERSION (its default when empty); raises NOT_FOUND."""
        model = self.table.model(name)
        return list(model.versions), model.version(version)

    async def infer(self, request: pb.ModelInferRequest, call: CallInfo,
                    client_metadata: Metadata = ()) -> pb.ModelInferResponse:
        event = InferenceEvent(side="router", call=call, model=request.model_name, version=request.model_version)
        async with self.observers.observing(event):
            response = await self._forward(request, call, client_metadata, event)
            event.version = response.model_version
            # The variant that answered says its role (primary, canary); metrics and spans use it.
            role = response.parameters[ROLE_PARAMETER].string_param
            if role and role != call.role:
                event.call = dataclasses.replace(call, role=role)
            return response

    async def _forward(self, request: pb.ModelInferRequest, call: CallInfo, client_metadata: Metadata,
                       event: InferenceEvent) -> pb.ModelInferResponse:
        mark = time.perf_counter()
        model = self.table.model(request.model_name)
        entry = model.version(request.model_version)
        check_shared_memory(request)  # first: such a request carries no data for the checks below
        check_request(request, entry.package.manifest.signature)
        class_counts(request, entry.package.manifest.signature)  # refused here, before it crosses the mesh
        event.timings["check"] = time.perf_counter() - mark
        call = with_request_timeout(call, request)
        request.id = call.request_id
        headers = forwarded_headers(client_metadata, call.request_id, model.name, request.model_version)
        remaining = call.remaining()
        timeout = remaining if remaining is not None else get_settings().default_timeout_s
        address = self.table.mesh_address or entry.address
        give_up = time.monotonic() + timeout
        while True:
            try:
                return await self.upstreams.stub(address).ModelInfer(
                    request, timeout=max(give_up - time.monotonic(), 0.001), metadata=headers)
            except grpc.aio.AioRpcError as exc:
                if self._starting(exc, model.name) and time.monotonic() + COLD_START_POLL_S < give_up:
                    event.timings["cold_start"] = time.perf_counter() - mark
                    await asyncio.sleep(COLD_START_POLL_S)
                    continue
                raise self._failure(exc, request, model.name, call, event) from exc

    def _starting(self, exc: grpc.aio.AioRpcError, model: str) -> bool:
        """Envoy found no replica of a variant that scales to zero: one is starting (or about to)."""
        if exc.code() != grpc.StatusCode.UNAVAILABLE or "no healthy upstream" not in (exc.details() or ""):
            return False
        version = dict(exc.trailing_metadata() or ()).get(VARIANT_HEADER, "").partition(" ")[0]
        return (model, version) in self.cold_variants

    def _failure(self, exc: grpc.aio.AioRpcError, request: pb.ModelInferRequest, model: str, call: CallInfo,
                 event: InferenceEvent) -> MeshError:
        version = request.model_version
        if self._starting(exc, model):
            return ModelUnavailable(f"model '{model}' is scaled to zero and its first replica did not start within "
                                    "the request's deadline; retry shortly, give it a longer deadline, or keep a "
                                    "replica running with replicas.min: 1 in meshserve.yaml")
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and request_timeout_s(request) is not None:
            return DeadlineExceeded(f"the request's timeout of {round(request_timeout_s(request) * 1e6)} us "
                                    "passed before its answer; raise the timeout parameter or send fewer rows")
        error = upstream_error(exc, model, version)
        if isinstance(error, AtCapacity):
            # Envoy names the variant it routed to, so the shed is counted against it.
            shed_version, _, role = dict(exc.trailing_metadata() or ()).get(VARIANT_HEADER, "").partition(" ")
            event.shed = True
            event.version = shed_version or version
            if role:
                event.call = dataclasses.replace(call, role=role)
        return error

    async def ready(self, name: str, version: str) -> bool:
        model = self.table.models.get(name)
        if model is None or (version and version not in model.versions):
            return False
        if self.table.mesh_address:
            # Through Envoy, as inferences go: ready means a healthy replica can answer.
            address, request = self.table.mesh_address, pb.ModelReadyRequest(name=name, version=version)
            headers = routing_headers(name, version)
        else:
            entry = model.version(version)
            address, headers = entry.address, []
            request = pb.ModelReadyRequest(name=name, version=entry.package.version)
        stub = self.upstreams.stub(address)
        for _ in range(2):
            try:
                answer = await stub.ModelReady(request, timeout=READY_TIMEOUT_S, metadata=headers)
                return answer.ready
            except grpc.aio.AioRpcError as exc:
                if self._starting(exc, name):
                    return True  # scaled to zero while idle: a request gets a replica started for it
                # Asking again is safe (no model code runs) and reaches another replica when the
                # one asked died with the question on its connection.
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    return False
        return False

    async def all_ready(self) -> bool:
        return all(await asyncio.gather(*(self.ready(name, "") for name in self.table.models)))

    async def close(self) -> None:
        await self.upstreams.close()
