"""The adapter's gRPC health follows its runtime: NOT_SERVING while the model cannot take work.

Envoy's active health checks read grpc.health.v1, not ModelReady; a status set once at start
would keep saying SERVING while every worker is stuck or a remote runtime is down. This task
asks the runtime (`Runtime.ready()`) every `MESHSERVE_HEALTH_POLL_S` and sets the status of
every service name when the answer changes. Other duties may hold the server back too (`also`:
in compliance mode, a spool that refuses records), each a quick callable answering "may serve".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from grpc_health.v1 import health_pb2

from meshserve.core.settings import get_settings

log = logging.getLogger("meshserve.adapter")


async def follow_readiness(runtime, health, service_names: list[str], label: str,
                           also: Iterable[Callable[[], bool]] = ()) -> None:
    """Run until cancelled, keeping HEALTH's status for SERVICE_NAMES in step with RUNTIME.ready()
    and every check in ALSO."""
    serving = True
    interval = get_settings().health_poll_s
    also = list(also)
    while True:
        await asyncio.sleep(interval)
        try:
            ready = bool(await runtime.ready()) and all(check() for check in also)
        except Exception:  # a runtime that cannot say is not ready
            ready = False
        if ready == serving:
            continue
        serving = ready
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        log.warning("%s is %s", label, "serving again" if ready else "not able to take work: reporting NOT_SERVING")
        for name in ("", *service_names):
            await health.set(name, status)
