"""Serve packages that appear in (or are fixed in) the models folder while the mesh runs.

The package watcher (package_watcher.py) decides what to load; this module loads it through
the parts `meshserve up` started, in an order where no request meets a half-started variant:

1. the adapters start exactly as at start (`Mesh._add_adapter`: the package's own environment,
   records, metrics), each replica until it prints its ready line;
2. behind Envoy, the spec gains the variant (a new version of a served model at weight 0; a new
   model with its meshserve.yaml entry, or its newest version as primary), and the cluster file
   naming its replicas is renamed into Envoy's watched folder (`VariantReplicas.add_variants`,
   as the autoscaler adds replicas). Envoy warms the cluster through its health checks;
3. the deployment and the models table (RunFolder.deployment, .models_table) are renamed into
   place with a higher generation; the router reloads them (router/table_reload.py), renders the
   routes (the new variant reachable by requests naming its version, none of the unpinned
   traffic), waits until Envoy serves them, and acknowledges the generation, which is awaited here;
4. each load goes into the deployment log: by the package watcher, the model, version, digest.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage
from meshserve.core.ports import free_port
from meshserve.core.replica_slots import replica_slots
from meshserve.spec.deployment_log import DeploymentLog
from meshserve.spec.deployment_spec import (
    DeploymentSpec, ModelDeployment, Replicas, Variant, load_spec, spec_path_for)
from meshserve.spec.model_table import UnavailableModel, loaded_generation, newest

Key = tuple[str, str]  # (model, version)
# Longest wait for the router to serve a rewritten table (its routes included).
ROUTER_TIMEOUT_S = 30.0
WATCHER = "package watcher"


def write_deployment(path: Path, spec: DeploymentSpec) -> None:
    """The deployment the mesh runs, renamed into place: the router may read it at any moment."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(spec.model_dump_json(indent=2))
    os.replace(temporary, path)


def new_model_deployment(models_dir: Path, model: str, versions: set[str]) -> ModelDeployment:
    """How a model first seen while the mesh runs is served: its meshserve.yaml entry if it has
    one, else its newest version as primary and the others at weight 0. Replica counts are fixed
    at the entry's minimum (at least one); raises ManifestError for an entry naming a missing version."""
    path = spec_path_for(models_dir)
    listed = load_spec(path).models.get(model)
    if listed is None:
        default = newest(sorted(versions))
        return ModelDeployment(variants=[Variant(version=default, weight=100)] + [
            Variant(version=v, weight=0) for v in sorted(versions) if v != default])
    for version in listed.replicas:
        if version not in versions:
            raise ManifestError(str(path), f"models.{model}", f"names version '{version}', which is not in the "
                                f"models folder (found: {', '.join(sorted(versions))})",
                                "put that version's package into the models folder too, or drop it from the entry")
    fixed = {v: Replicas(min=max(r.min, 1), max=max(r.min, 1)) for v, r in listed.replica_ranges.items()}
    return listed.model_copy(update={
        "variants": [v.model_copy(update={"replicas": fixed[v.version]}) for v in listed.variants],
        "shadows": [s.model_copy(update={"replicas": fixed[s.version]}) for s in listed.shadows],
        "rollout_plan": None})


class LiveLoading:
    def __init__(self, mesh, log: Callable[[str], None]):
        self.mesh = mesh
        self._log = log
        self._lock = asyncio.Lock()
        self._packages: dict[Key, ModelPackage] = {}  # those being loaded now

    def served(self) -> dict[Key, ModelPackage]:
        return dict(self.mesh.served)

    async def publish(self, unavailable: list[UnavailableModel]) -> None:
        """The broken packages as the watcher sees them now, in the repository index and for Deploy."""
        async with self._lock:
            self.mesh.unavailable = list(unavailable)
            await self._rewrite_table()

    async def load(self, packages: list[ModelPackage], fixed: set[Key],
                   unavailable: list[UnavailableModel]) -> dict[Key, str]:
        """Serve PACKAGES (versions not served yet; FIXED: those broken at start). Returns why each
        one that could not be served was not; the others answer when this returns."""
        async with self._lock:
            failed: dict[Key, str] = {}
            self._packages = {(p.name, p.version): p for p in packages}
            models_before = {model for model, _ in self.mesh.served}
            plans = self._plan(packages, failed)
            started = await self._start(plans, failed)
            if self.mesh.layout is not None:
                started = await self._into_envoy(started, plans, failed)
            else:
                for key, replicas in started.items():
                    self.mesh.direct_addresses[key] = replicas[0][1]
            by_key = self._packages
            for key in started:
                self.mesh.served[key] = by_key[key]
            self.mesh.unavailable = list(unavailable)
            if started or failed:
                await self._rewrite_table()
            for key in sorted(started):
                self._record(by_key[key], plans[key[0]], key in fixed, key[0] in models_before)
            return failed

    def _plan(self, packages: list[ModelPackage], failed: dict[Key, str]) -> dict[str, ModelDeployment]:
        """Each model's deployment once the new versions run."""
        spec = self.mesh.deployment
        plans: dict[str, ModelDeployment] = {}
        by_model: dict[str, set[str]] = {}
        for package in packages:
            by_model.setdefault(package.name, set()).add(package.version)
        for model, versions in sorted(by_model.items()):
            if spec is None:
                plans[model] = ModelDeployment(variants=[Variant(version=v, weight=1) for v in sorted(versions)])
            elif model in spec.models:
                deployment = spec.models[model]
                plans[model] = deployment.model_copy(update={"variants": list(deployment.variants) + [
                    Variant(version=v, weight=0) for v in sorted(versions)]})
            else:
                try:
                    plans[model] = new_model_deployment(self.mesh.models_dir, model, versions)
                except ManifestError as exc:
                    failed.update({(model, v): str(exc) for v in versions})
        return plans

    async def _start(self, plans: dict[str, ModelDeployment], failed: dict[Key, str]) -> dict[Key, list[tuple[str, str]]]:
        """Start every replica of every new version; a model new to the mesh starts whole or not at all."""
        wanted: dict[Key, list[tuple[str, str]]] = {}
        for model, deployment in plans.items():
            for version, count in deployment.replicas.items():
                key = (model, version)
                if key in self.mesh.served:
                    continue
                count = max(count, 1)
                wanted[key] = [(f"{model}:{version}" + (f"#{i + 1}" if count > 1 else ""), f"127.0.0.1:{free_port()}")
                               for i in range(count)]
        packages = self._packages
        jobs = [(key, label, address) for key, replicas in wanted.items() for label, address in replicas]
        results = await asyncio.gather(*(self.mesh._add_adapter(label, packages[key], address)
                                         for key, label, address in jobs), return_exceptions=True)
        for (key, label, _), result in zip(jobs, results):
            if isinstance(result, BaseException):
                failed.setdefault(key, f"its adapter did not start: {result}")
        for key in list(wanted):
            model_is_new = self.mesh.deployment is None or key[0] not in self.mesh.deployment.models
            if key in failed or model_is_new and any(k[0] == key[0] for k in failed):
                failed.setdefault(key, f"another version of '{key[0]}' did not start, and a model new to the mesh "
                                       "starts with all its versions")
                await asyncio.gather(*(self.mesh._retire_adapter(label) for label, _ in wanted.pop(key)))
        return wanted

    async def _into_envoy(self, started: dict[Key, list[tuple[str, str]]], plans: dict[str, ModelDeployment],
                          failed: dict[Key, str]) -> dict[Key, list[tuple[str, str]]]:
        """Clusters for the started variants; they count as started once Envoy reports them healthy."""
        spec, upstreams = self.mesh.deployment, self.mesh.upstreams
        for model, deployment in plans.items():
            running = {v for v in deployment.replicas if (model, v) in started or (model, v) in self.mesh.served}
            if running:
                spec.models[model] = _keep(deployment, running)
        for key in started:
            upstreams.slots[key] = replica_slots(self._packages[key].manifest)
        healthy = set(await self.mesh.variant_replicas.add_variants(started)) if started else set()
        for key in [k for k in started if k not in healthy]:
            failed[key] = (f"Envoy did not report its replicas healthy in time (see {self.mesh.variant_replicas.clusters.log_path})")
            await asyncio.gather(*(self.mesh._retire_adapter(label) for label, _ in started.pop(key)))
            model = spec.models[key[0]]
            remaining = {v for v in model.replicas if v != key[1]}
            if remaining and any(v.version in remaining and v.weight > 0 for v in model.variants):
                spec.models[key[0]] = _keep(model, remaining)
            else:
                del spec.models[key[0]]
            self.mesh.variant_replicas.drop_variant(key)
        write_deployment(self.mesh.run.deployment, spec)
        return started

    async def _rewrite_table(self) -> None:
        self.mesh.generation += 1
        generation = self.mesh.write_table()
        deadline = time.monotonic() + ROUTER_TIMEOUT_S
        while loaded_generation(self.mesh.table_path) < generation:
            if time.monotonic() > deadline:
                self._log(f"meshserve: the router did not load the rewritten models table within "
                          f"{ROUTER_TIMEOUT_S:.0f} s (see its lines above); it loads it when it can")
                return
            await asyncio.sleep(0.1)

    def _record(self, package: ModelPackage, deployment: ModelDeployment, fixed: bool, existing: bool) -> None:
        weights = {v.version: v.weight for v in deployment.variants}
        if fixed:
            what = "loaded (fixed since start)"
            line = f"meshserve: now serving {package.name}:{package.version} (fixed since start)"
        elif existing and self.mesh.layout is None:
            what = "loaded"
            line = (f"meshserve: now serving {package.name}:{package.version}: requests naming version "
                    f"{package.version} reach it (without Envoy the others keep their version)")
        elif existing:
            what = "loaded at weight 0"
            line = (f"meshserve: now serving {package.name}:{package.version} at weight 0: only requests naming "
                    f"version {package.version} reach it; give it a role with "
                    f"`meshserve deploy {package.name} {package.version} --canary 10` (or --shadow, --primary)")
        else:
            role = "primary" if weights.get(package.version, 0) > 0 else "weight 0"
            what = f"loaded as {role} of a new model"
            line = f"meshserve: now serving {package.name}:{package.version} ({role} of a new model)"
        DeploymentLog(self.mesh.run.deployment_log).change(
            package.name, what, f"its package appeared or changed in {self.mesh.models_dir}", WATCHER,
            version=package.version, digest=package.digest, package=str(package.directory),
            weight=weights.get(package.version, 0))
        self._log(line)


def _keep(deployment: ModelDeployment, versions: set[str]) -> ModelDeployment:
    """DEPLOYMENT with only VERSIONS among its variants and shadows."""
    fallback = deployment.fallback if deployment.fallback in versions else None
    return deployment.model_copy(update={
        "variants": [v for v in deployment.variants if v.version in versions],
        "shadows": [s for s in deployment.shadows if s.version in versions], "fallback": fallback})

