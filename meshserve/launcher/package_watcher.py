"""`meshserve up`'s package watcher: the models folder is looked at again every
MESHSERVE_WATCH_INTERVAL_S seconds, and what changed in it is served without a restart.

* A package that failed to load (at start or since) is tried again once its files change;
  if it loads, it is served ("now serving MODEL:VERSION (fixed since start)"), else its new
  reason is said once, and again only after its files change again.
* A new version of a served model (a package directory or bundle appearing) is served at
  weight 0: reachable by requests naming its version, taking none of the others, until
  `meshserve deploy` gives it a role.
* A model new to the mesh is served with its only (or newest) version as primary.

A location is acted on once its fingerprint (meshserve/spec/models_folder.py) stayed the same for one
interval, so a package still being copied is not read half-written. The loading itself is
live_loading.py's. Nothing is unloaded when a package disappears, and a version that is
served already keeps the package its adapters loaded: a changed package needs a new version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import BrokenPackage, ModelPackage
from meshserve.core.bundle import SUFFIX
from meshserve.spec.model_table import UnavailableModel
from meshserve.spec.models_folder import Fingerprint, load_location, named_in, package_locations

Key = tuple[str, str]


class PackageWatcher:
    def __init__(self, models_dir: str | Path, loading, log: Callable[[str], None], interval: float):
        self.models_dir = Path(models_dir).resolve()
        self.loading = loading  # live_loading.LiveLoading
        self._log = log
        self.interval = interval
        self._seen: dict[Path, Fingerprint] = package_locations(self.models_dir)  # at the last look
        self._acted: dict[Path, Fingerprint] = dict(self._seen)  # when each was last read
        self._failing: dict[Path, UnavailableModel] = {}  # locations that do not load, and why
        self._waiting: dict[Path, ModelPackage] = {}  # loaded, not served yet
        self._broken_at_start: set[Path] = set()
        self._models_broken_at_start: set[str] = set()
        self._published: list[UnavailableModel] | None = None

    def prime(self, broken: list[BrokenPackage]) -> None:
        """What `up` could not serve: the broken packages, and the good versions of the models they
        belong to (a model with a broken version is not served at all, as at start)."""
        for package in broken:
            location = Path(package.directory).resolve()
            self._broken_at_start.add(location)
            # As `up` listed it in the repository index, so the first look finds nothing new to say.
            self._failing[location] = UnavailableModel(package.model or location.name, "", str(package.error))
        models = {u.name for u in self._failing.values()}
        self._models_broken_at_start = models
        served = self.loading.served()
        for package in served.values():
            package.digest  # noqa: B018 - taken now, while the files are those the adapters loaded
        for location in self._acted:
            if location in self._failing or location.name.endswith(SUFFIX) or named_in(location)[0] not in models:
                continue
            try:
                package = load_location(location)
            except ManifestError:
                continue
            if (package.name, package.version) not in served:
                self._waiting[location] = package
        self._published = sorted(self._failing.values(), key=_order)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.step()
            except Exception as exc:  # noqa: BLE001 - the mesh keeps serving what it serves; look again later
                self._log(f"meshserve: the package watcher failed to look at {self.models_dir} "
                          f"({type(exc).__name__}: {exc}); looking again in {self.interval:g} s")

    async def step(self) -> None:
        now = await asyncio.to_thread(package_locations, self.models_dir)
        settled = [location for location, fingerprint in sorted(now.items())
                   if self._seen.get(location) == fingerprint and self._acted.get(location) != fingerprint]
        self._seen = now
        for gone in set(self._acted) - set(now):
            self._acted.pop(gone)
            self._waiting.pop(gone, None)
            self._failing.pop(gone, None)
        for location in settled:
            self._acted[location] = now[location]
            await self._read(location)
        await self._serve_waiting()
        unavailable = sorted(self._failing.values(), key=_order)
        if unavailable != self._published:
            await self.loading.publish(unavailable)
            self._published = unavailable

    async def _read(self, location: Path) -> None:
        self._waiting.pop(location, None)
        try:
            package = await asyncio.to_thread(load_location, location)
        except ManifestError as exc:
            name = None if location.name.endswith(SUFFIX) else named_in(location)[0]
            self._fail(location, name, str(exc))
            return
        self._failing.pop(location, None)
        self._waiting[location] = package

    def _fail(self, location: Path, model: str | None, reason: str) -> None:
        again = "still " if location in self._failing or location in self._broken_at_start else ""
        self._failing[location] = self._unavailable(location, model, reason)
        self._log(f"meshserve: {again}not serving {model or location.name} ({location}): {reason}")

    @staticmethod
    def _unavailable(location: Path, model: str | None, reason: str) -> UnavailableModel:
        version = None if location.name.endswith(SUFFIX) else named_in(location)[1]
        return UnavailableModel(model or location.name, version or "", reason)

    async def _serve_waiting(self) -> None:
        served = self.loading.served()
        # A model new to the mesh waits for all its packages to load, as at start; a served one
        # takes each new version alone (at weight 0 it changes no split).
        broken_models = {u.name for u in self._failing.values()} - {model for model, _ in served}
        chosen: dict[Key, Path] = {}
        for location, package in sorted(self._waiting.items()):
            key = (package.name, package.version)
            if key in served:
                del self._waiting[location]
                if served[key].digest != package.digest:
                    self._log(f"meshserve: {key[0]}:{key[1]} changed in {location}; the mesh keeps serving the "
                              f"package it loaded (digest {served[key].digest[:16]}): give the change a new version "
                              "to serve it")
            elif key in chosen:
                del self._waiting[location]
                self._fail(location, key[0], f"version {key[1]} of '{key[0]}' is also in {chosen[key]}; give each "
                                             "package of the same model its own version")
            elif package.name not in broken_models:
                chosen[key] = location
        if not chosen:
            return
        packages = [self._waiting[location] for location in chosen.values()]
        fixed = {key for key, location in chosen.items()
                 if location in self._broken_at_start or key[0] in self._models_broken_at_start}
        failed = await self.loading.load(packages, fixed, sorted(self._failing.values(), key=_order))
        for key, location in chosen.items():
            del self._waiting[location]
            if key in failed:
                self._fail(location, key[0], failed[key])
            else:
                self._broken_at_start.discard(location)
                self._models_broken_at_start.discard(key[0])


def _order(u: UnavailableModel) -> tuple[str, str, str]:
    return (u.name, u.version, u.reason)
