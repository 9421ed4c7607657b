"""What each console page shows, assembled from the control service (the live split, versions,
readiness, the deployment log, progressive rollouts) and the records store's public query API
(traffic, latency, drift, agreement, quality, single records).

Store reads run in worker threads on one connection of the console's own, one at a time, so a
slow query delays the next chart, never an inference or the recorder; every read is bounded by
its window or page (sidecars/records/store.py). The heavier judgements (agreement, quality) are
kept for a few seconds, so many open pages cost one computation.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from meshserve.console.requests import Window
from meshserve.console.series import SPLIT_SECONDS, series
from meshserve.core.errors import MeshError
from meshserve.core.settings import get_settings
from meshserve.envoy.routing import variant_hosts
from meshserve.sidecars.records.store import open_store

JUDGED_FOR_S = 10.0  # how long an agreement or quality figure is shown before it is computed again
LOG_ENTRIES = 50
QUALITY_WINDOW_S = 3600.0


class NoRecords(RuntimeError):
    """The mesh keeps no records (records.enabled is false), so this page has nothing to show."""


class ConsoleReads:
    def __init__(self, control):
        self.control = control
        self._store = None
        self._lock = threading.Lock()
        self._judged: dict[tuple, tuple[float, Any]] = {}

    @property
    def url(self) -> str | None:
        return self.control.table.control.records_store

    def _read(self, work: Callable[[Any], Any]) -> Any:
        """WORK(store) on the console's connection, opened on first use and again after a failure."""
        if not self.url:
            raise NoRecords("this mesh keeps no records (records.enabled is false in meshserve.yaml)")
        with self._lock:
            if self._store is None:
                self._store = open_store(self.url)
            try:
                return work(self._store)
            except Exception:
                store, self._store = self._store, None
                store.close()
                raise

    async def read(self, work: Callable[[Any], Any]) -> Any:
        return await asyncio.to_thread(self._read, work)

    async def judged(self, key: tuple, work: Callable[[Any], Any]) -> Any:
        """WORK's answer, computed at most once every JUDGED_FOR_S seconds per KEY."""
        kept = self._judged.get(key)
        if kept is not None and time.monotonic() - kept[0] < JUDGED_FOR_S:
            return kept[1]
        answer = await self.read(work)
        self._judged[key] = (time.monotonic(), answer)
        return answer

    # -- the pages -------------------------------------------------------------------------------

    async def models(self, versions_of: Callable) -> list[dict[str, Any]]:
        """The Models page: every model and version with its split, health and badges."""
        return [await self.model_summary(name, versions_of) for name in sorted(self.control.table.models)]

    async def model_summary(self, name: str, versions_of: Callable) -> dict[str, Any]:
        rollout = self.rollout(name)
        versions = []
        for version in await versions_of(name):
            replicas = await asyncio.to_thread(self._replicas, name, version["version"])
            versions.append({**version, "replicas": replicas,
                             "weight": rollout["weights"].get(version["version"], 0),
                             "shadow": rollout["shadows"].get(version["version"])})
        return {"name": name, "versions": versions, "rollout": rollout, "gate": self.last_gate(name),
                "drift": await self._badge(self.drift_badge, name), "quality": await self._badge(self.quality_badge, name),
                "progressive": self.progressive(name)}

    async def _badge(self, badge: Callable, name: str) -> dict[str, Any]:
        try:
            return await self.judged((badge.__name__, name), lambda store: badge(store, name))
        except NoRecords as exc:
            return {"state": "none", "text": str(exc)}

    async def model_page(self, name: str, window: Window) -> dict[str, Any]:
        """The model page: per version and role over WINDOW, and what judges it."""
        steps = int(round(window.seconds / window.step_s))

        def charts(store) -> dict[str, Any]:
            traffic = store.traffic(name, window.since, window.until, window.step_s)
            latency = store.latency_bins(name, window.since, window.until, window.step_s)
            recent = store.traffic(name, window.until - SPLIT_SECONDS, window.until, SPLIT_SECONDS)
            return {**series(traffic, latency, window.since, window.step_s, steps),
                    "split_now": _split(recent), "batch_sizes": store.batch_sizes(name, window.since, window.until),
                    "drift": store.drift_status(name), "drift_alerts": store.drift_alerts(name, since=window.since)}

        page: dict[str, Any] = {"name": name, "window": {"since": window.since, "until": window.until,
                                                         "step_s": window.step_s},
                                "rollout": self.rollout(name), "log": self.log(name),
                                "progressive": self.progressive(name)}
        try:
            page.update(await self.read(charts))
            page["agreement"] = await self.judged(("agreement", name, window.seconds),
                                                  lambda store: _agreement(store, name, window.since))
            page["quality"] = await self.judged(("quality", name, window.seconds),
                                                lambda store: _quality(store, name, window.since))
        except NoRecords as exc:
            page["no_records"] = str(exc)
        return page

    # -- pieces ----------------------------------------------------------------------------------

    def rollout(self, name: str) -> dict[str, Any]:
        rollouts = self.control.rollouts
        if rollouts is None:
            return {"weights": {self.control.table.model(name).default_version: 100}, "shadows": {}}
        current = rollouts.current(name)
        return {"weights": dict(current.weights), "shadows": dict(current.shadows)}

    def log(self, name: str) -> list[dict[str, Any]]:
        return self.control.log.entries(name)[-LOG_ENTRIES:][::-1]

    def last_gate(self, name: str) -> dict[str, Any] | None:
        deploys = [e for e in self.control.log.entries(name) if e.get("action") == "Deploy"]
        if not deploys:
            return None
        last = deploys[-1]
        return {"time": last.get("time"), "result": last.get("result"), "version": last.get("version"),
                "by": last.get("by"), "gate": last.get("gate"), "reason": last.get("reason")}

    def progressive(self, name: str) -> dict[str, Any] | None:
        controller = self.control.controller
        if controller is None or name not in controller.plans:
            return None
        return controller.status(name)

    def _replicas(self, name: str, version: str) -> list[dict[str, str]]:
        """Each replica of a version and its health as Envoy sees it (empty without Envoy)."""
        envoy = self.control.table.control.envoy
        if envoy is None:
            return []
        try:
            hosts = variant_hosts(envoy, (name, version))
        except (OSError, MeshError, ValueError):
            return []
        return [{"address": address, "health": flags} for address, flags in sorted(hosts.items())]

    @staticmethod
    def drift_badge(store, name: str) -> dict[str, Any]:
        status, alerts = store.drift_status(name), store.drift_alerts(name, open_only=True)
        if alerts:
            return {"state": "alert", "text": f"{len(alerts)} open drift alert(s)",
                    "features": sorted({a["feature"] for a in alerts})}
        if not status:
            return {"state": "none", "text": "not checked yet (or drift is off for this model)"}
        return {"state": "ok", "text": f"{len(status)} columns within their thresholds",
                "checked_at": max(r["checked_at"] for r in status)}

    def quality_badge(self, store, name: str) -> dict[str, Any]:
        from meshserve.sidecars.records.api import alerts_for

        report = _quality(store, name, time.time() - QUALITY_WINDOW_S)
        if not report["groups"]:
            return {"state": "none", "text": "no outcomes reported in the last hour"}
        spec = self._quality_spec(name)
        said = alerts_for(report, spec.min_accuracy, spec.max_mae, spec.min_outcomes) if spec else []
        figures = [f"{g['version']} ({g['role']}) {_headline(g)}" for g in report["groups"]]
        return {"state": "alert" if said else "ok", "text": "; ".join(said or figures)}

    def _quality_spec(self, name: str):
        rollouts = self.control.rollouts
        deployment = rollouts.spec.models.get(name) if rollouts is not None else None
        return deployment.quality if deployment is not None else None


def _split(recent: list[dict]) -> dict[str, float]:
    counts: dict[str, int] = {}
    for row in recent:
        if row["role"] != "shadow":
            counts[str(row["version"])] = counts.get(str(row["version"]), 0) + int(row["requests"])
    total = sum(counts.values())
    return {v: round(100.0 * n / total, 1) for v, n in sorted(counts.items())} if total else {}


def _agreement(store, name: str, since: float) -> dict[str, Any]:
    from meshserve.sidecars.compare.api import compare

    result = compare(store, name, since, None, get_settings().judging_max_records)
    keep = ("version", "kind", "primary_version", "pairs", "both_answered", "requests", "primary_requests",
            "errors", "latency_ms", "outputs", "verdict", "warnings")
    return {kind: [{k: entry.get(k) for k in keep if k in entry} for entry in result[kind]]
            for kind in ("shadows", "canaries")}


def _quality(store, name: str, since: float) -> dict[str, Any]:
    from meshserve.sidecars.records.api import quality

    return quality(store.joined(name, since=since, limit=get_settings().judging_max_records))


def _headline(group: dict[str, Any]) -> str:
    from meshserve.sidecars.records.api import headline

    parts = []
    for output, figures in group["outputs"].items():
        found = headline(figures)
        if found:
            parts.append(f"{found[0]} of {output} {found[1]:.3f} (n={figures['n']})")
    return ", ".join(parts) or "no figure"
