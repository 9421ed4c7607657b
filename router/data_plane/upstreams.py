"""The router's channels to what it forwards to: each adapter, or Envoy's mesh listener."""

from __future__ import annotations

import asyncio

import grpc
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from meshserve.core.errors import MeshError, ModelUnavailable, quoted
from meshserve.core.grpc_server import channel_options
from meshserve.core.internal_tls import channel_credentials


class Upstreams:
    """One channel per address, reused by every request."""

    def __init__(self) -> None:
        self._stubs: dict[str, pb_grpc.GRPCInferenceServiceStub] = {}
        self._channels: list[grpc.aio.Channel] = []

    def stub(self, address: str) -> pb_grpc.GRPCInferenceServiceStub:
        if address not in self._stubs:
            credentials = channel_credentials()  # mutual TLS behind the front when the spec asks for it
            channel = (grpc.aio.secure_channel(address, credentials, options=channel_options()) if credentials
                       else grpc.aio.insecure_channel(address, options=channel_options()))
            self._channels.append(channel)
            self._stubs[address] = pb_grpc.GRPCInferenceServiceStub(channel)
        return self._stubs[address]

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._channels))


def upstream_error(exc: grpc.aio.AioRpcError, model: str, version: str) -> MeshError:
    """Keep the adapter's status and message; say what to do when the adapter is gone."""
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        which = f"model '{model}'" + (f" version '{quoted(version)}'" if version else "")
        return ModelUnavailable(f"{which} is unavailable ({exc.details()}); "
                                "its adapter is down or restarting, retry shortly")
    return MeshError.from_status(exc.code(), exc.details())
