"""The router picks up a models table the launcher rewrote while the mesh runs.

`meshserve up` rewrites the models table (and the deployment beside it) by renaming a new file
over the old one after it loaded a package from the models folder (meshserve/launcher/
live_loading.py). A background task here notices the new file, reads it off the event loop,
and then, in this order:

1. behind Envoy, renders the routes with the new models and variants (a new variant at weight
   0: reachable only by requests naming its version) and waits until Envoy serves them;
2. swaps the new entries into the table the data and control planes share. Each swap replaces
   one dict, so a request in flight keeps the entry it resolved, and no request can resolve
   a version before its route exists;
3. acknowledges the generation (RunFolder.table_acknowledgement), which the launcher waits for.

Nothing here runs on the request path.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from meshserve.spec.deployment_spec import DeploymentSpec
from meshserve.spec.model_table import ModelTable, acknowledge

# How often the router looks at the table file: a stat, cheap enough to do often, so a package
# the launcher loaded is reachable moments after its adapter is healthy.
POLL_S = 0.25


class TableReload:
    def __init__(self, path: str | Path, table: ModelTable, forwarder, control):
        self.path = Path(path)
        self.table = table
        self.forwarder = forwarder
        self.control = control
        self._stamp = self._stat()

    def _stat(self) -> tuple | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    async def run(self) -> None:
        acknowledge(self.path, self.table.generation)  # a restarted router serves what the table says
        while True:
            await asyncio.sleep(POLL_S)
            stamp = self._stat()
            if stamp is None or stamp == self._stamp:
                continue
            try:
                await self.reload()
                self._stamp = stamp
            except Exception as exc:  # noqa: BLE001 - keep serving the table we have; try again on the next look
                print(f"router: could not load the rewritten models table {self.path} "
                      f"({type(exc).__name__}: {exc}); still serving the previous one", flush=True)
                await asyncio.sleep(1.0)

    async def reload(self) -> None:
        newer = await asyncio.to_thread(ModelTable.read, self.path)
        if newer.generation <= self.table.generation:
            return
        routing = self.control.rollouts
        if routing is not None and newer.control.deployment is not None:
            spec = DeploymentSpec.model_validate_json(await asyncio.to_thread(newer.control.deployment.read_text))
            await asyncio.to_thread(routing.take_in, spec)
        self.forwarder.cold_variants = set(newer.control.cold_variants)
        added = self.table.take_in(newer)
        await asyncio.to_thread(acknowledge, self.path, newer.generation)
        if added:
            print(f"router: now routing {', '.join(f'{m}:{v}' for m, v in added)} "
                  f"(models table generation {newer.generation})", flush=True)
