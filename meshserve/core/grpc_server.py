"""What every meshserve gRPC server shares: message limits, health, reflection, and a
graceful stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import traceback
from collections.abc import Coroutine

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from meshserve.core.errors import ManifestError
from meshserve.core.internal_tls import server_credentials
from meshserve.core.mesh_secret import MeshSecretCheck, mesh_secret
from meshserve.core.settings import get_settings


def create_server(interceptors: list[grpc.aio.ServerInterceptor] | None = None) -> grpc.aio.Server:
    """A server with the mesh's limits; INTERCEPTORS see every call (tracing, auth, metrics).
    In a mesh with a secret, calls without it are refused before any interceptor sees them."""
    limit = get_settings().max_message_bytes
    checks = [MeshSecretCheck()] if mesh_secret() else []
    return grpc.aio.server(interceptors=[*checks, *(interceptors or ())], options=[
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.so_reuseport", 0),  # a second server on a busy port must fail, not share it
    ])


def add_health_and_reflection(server: grpc.aio.Server, service_names: list[str],
                              unserved: dict[str, tuple[str, ...]] | None = None) -> health.aio.HealthServicer:
    """Health and reflection; reflection leaves out UNSERVED methods (service name -> method names),
    which answer UNIMPLEMENTED, so a tool that lists methods (grpcurl) lists what is served."""
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server, pool=_reflected_pool(names, unserved or {}))
    return health_servicer


def _reflected_pool(service_names: list[str], unserved: dict[str, tuple[str, ...]]) -> descriptor_pool.DescriptorPool:
    """A copy of the services' .proto files as reflection shows them, without the unserved methods."""
    pool, added = descriptor_pool.DescriptorPool(), set()

    def add(file) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        for service in proto.service:
            hidden = unserved.get(f"{proto.package}.{service.name}", ())
            kept = [m for m in service.method if m.name not in hidden]
            del service.method[:]
            service.method.extend(kept)
        pool.Add(proto)
        added.add(file.name)

    for name in service_names:
        add(descriptor_pool.Default().FindFileContainingSymbol(name))
    return pool


async def start_serving(server: grpc.aio.Server, listen: str, who: str,
                        health_servicer: health.aio.HealthServicer, service_names: list[str]) -> str:
    """Listen on LISTEN (a busy address stops the process with one line) and report SERVING.

    Returns the address listened on: with port 0 the system picks a free port, which is how a
    caller that starts many servers at once avoids racing for ports it chose in advance.
    """
    credentials = server_credentials()  # mutual TLS behind the front when the spec asks for it
    port = server.add_secure_port(listen, credentials) if credentials else server.add_insecure_port(listen)
    if port == 0:
        raise SystemExit(f"meshserve {who}: cannot listen on {listen} (address in use?)")
    await server.start()
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return f"{listen.rpartition(':')[0]}:{port}"


def run_server(who: str, serving: Coroutine) -> int:
    """Run a server process to its end; a configuration mistake is one line and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serving)
    except ManifestError as exc:
        if get_settings().debug:
            traceback.print_exception(exc)
        print(f"meshserve {who}: {exc}", file=sys.stderr)
        return 2
    return 0


async def serve_until_stopped(server: grpc.aio.Server, health_servicer, on_stop=None) -> None:
    """Run until SIGTERM/SIGINT, then refuse new work and let in-flight calls finish."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(get_settings().shutdown_grace_s)
    if on_stop is not None:
        await on_stop()


def channel_options() -> list[tuple[str, int]]:
    """Client-side options: same message limit, and quick reconnects after a restart."""
    limit = get_settings().max_message_bytes
    return [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]
