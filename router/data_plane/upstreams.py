"""The router's channels to what it forwards to: each adapter, or Envoy's mesh listener."""

from __future__ import annotations

import asyncio

import grpc
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from meshserve.core.errors import AtCapacity, MeshError, ModelUnavailable, quoted
from meshserve.core.grpc_server import channel_options
from meshserve.core.internal_tls import channel_credentials
from meshserve.core.mesh_secret import mesh_secret_interceptors
from meshserve.core.settings import get_settings

# What Envoy marks an answer with when a circuit breaker refused the request (overflow).
OVERLOADED_HEADER = "x-envoy-overloaded"


class Upstreams:
    """One channel per address, reused by every request."""

    def __init__(self) -> None:
        self._stubs: dict[str, pb_grpc.GRPCInferenceServiceStub] = {}
        self._channels: list[grpc.aio.Channel] = []

    def stub(self, address: str) -> pb_grpc.GRPCInferenceServiceStub:
        if address not in self._stubs:
            credentials = channel_credentials()  # mutual TLS behind the front when the spec asks for it
            secret = mesh_secret_interceptors()  # else the mesh secret, which adapters and Envoy ask of every call
            channel = (grpc.aio.secure_channel(address, credentials, options=channel_options(), interceptors=secret)
                       if credentials else
                       grpc.aio.insecure_channel(address, options=channel_options(), interceptors=secret))
            self._channels.append(channel)
            self._stubs[address] = pb_grpc.GRPCInferenceServiceStub(channel)
        return self._stubs[address]

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._channels))


def shed_by_envoy(exc: grpc.aio.AioRpcError) -> bool:
    """Envoy refused the call because the variant has all the requests its limits allow."""
    trailers = dict(exc.trailing_metadata() or ())
    return exc.code() == grpc.StatusCode.UNAVAILABLE and (
        trailers.get(OVERLOADED_HEADER) == "true" or "reset reason: overflow" in (exc.details() or ""))


def upstream_error(exc: grpc.aio.AioRpcError, model: str, version: str) -> MeshError:
    """Keep the adapter's status and message; say what to do when the adapter is gone or full."""
    which = f"model '{model}'" + (f" version '{quoted(version)}'" if version else "")
    if shed_by_envoy(exc):
        retry_after = get_settings().retry_after_s
        return AtCapacity(f"{which} is at capacity: the mesh is serving all the requests it can for it and shed "
                          f"this one; retry after {retry_after:g} s (or raise limits.max_in_flight or replicas "
                          "in meshserve.yaml)", retry_after)
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        return ModelUnavailable(f"{which} is unavailable ({exc.details()}); "
                                "its adapter is down or restarting, retry shortly")
    return MeshError.from_status(exc.code(), exc.details())
