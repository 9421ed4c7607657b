"""`meshserve up`'s autoscaler: it keeps the replicas of each variant whose spec says
`replicas: {min, max}` in step with the variant's load, on one machine.

Every MESHSERVE_AUTOSCALE_INTERVAL_S it reads the requests in flight at each such variant from
Envoy's admin stats (`upstream_rq_active` of the variant's cluster), asks `scaling.decide`
what to run, and acts through `VariantReplicas`:

* growing: start the new adapters (each through the launcher's own start function, as any
  replica), then rename a cluster file naming them into Envoy's watched folder. Envoy warms
  the new cluster (its health checks must pass) before it sends it a request, so no request
  meets a replica that is still loading;
* shrinking: first render the cluster without the replica and wait until Envoy serves it, so
  no new request goes there; then give the requests it holds a moment, and stop it with
  SIGTERM, which lets calls in flight finish. No request fails on the way.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
from collections.abc import Awaitable, Callable

from meshserve.core.ports import free_port
from meshserve.core.settings import get_settings
from meshserve.envoy.render import EnvoyLayout, UpstreamAddresses
from meshserve.envoy.routing import VariantClusters
from meshserve.launcher.scaling import ScalingPolicy, ScalingState, decide
from meshserve.spec.deployment_spec import DeploymentSpec

Key = tuple[str, str]  # (model, version)
# How long a replica taken out of Envoy's cluster keeps running before it is asked to stop:
# Envoy's worker threads switch to the new cluster within milliseconds of the main thread.
DRAIN_S = 1.0
# Longest wait for Envoy to serve a new cluster file (health checks of new replicas included).
APPLY_TIMEOUT_S = 30.0


def scaling_policies(spec: DeploymentSpec) -> dict[Key, ScalingPolicy]:
    """The variants whose replicas are a range, with the policy their model's spec gives them."""
    policies = {}
    for model, deployment in spec.models.items():
        scaling = deployment.autoscaling
        for version, replicas in deployment.replica_ranges.items():
            if replicas.scales:
                policies[(model, version)] = ScalingPolicy(
                    replicas.min, replicas.max, scaling.target_in_flight, scaling.scale_up_after_s, scaling.cooldown_s)
    return policies


class VariantReplicas:
    """The running replicas of every variant and the cluster file that names them."""

    def __init__(self, spec: DeploymentSpec, layout: EnvoyLayout, upstreams: UpstreamAddresses,
                 labels: dict[Key, list[str]],
                 start: Callable[[Key, str, str], Awaitable[None]], stop: Callable[[str], Awaitable[None]],
                 log: Callable[[str], None]):
        self.spec, self.layout, self.upstreams = spec, layout, upstreams
        self.labels = labels  # per variant, the supervisor label of each replica, in upstreams' order
        self._start, self._stop, self._log = start, stop, log
        self._numbers = {key: len(found) for key, found in labels.items()}
        self.clusters = VariantClusters(spec, layout, upstreams)

    def count(self, key: Key) -> int:
        return len(self.upstreams.variants[key])

    def _label(self, key: Key) -> str:
        self._numbers[key] += 1
        return f"{key[0]}:{key[1]}#{self._numbers[key]}"

    async def scale_to(self, key: Key, wanted: int) -> None:
        if wanted > self.count(key):
            await self._grow(key, wanted - self.count(key))
        elif wanted < self.count(key):
            await self._shrink(key, self.count(key) - wanted)

    async def _grow(self, key: Key, more: int) -> None:
        new = [(self._label(key), f"127.0.0.1:{free_port()}") for _ in range(more)]
        results = await asyncio.gather(*(self._start(key, label, address) for label, address in new),
                                       return_exceptions=True)
        started = []
        for (label, address), result in zip(new, results):
            if isinstance(result, BaseException):
                self._log(f"meshserve: could not add a replica of {key[0]}:{key[1]}: {result}")
                await self._stop(label)
            else:
                started.append((label, address))
        if not started:
            return
        self.labels[key] += [label for label, _ in started]
        self.upstreams.variants[key] += [address for _, address in started]
        await self._apply(key, lambda hosts: all(hosts.get(a) == "healthy" for _, a in started))

    async def _shrink(self, key: Key, fewer: int) -> None:
        labels, addresses = self.labels[key][-fewer:], self.upstreams.variants[key][-fewer:]
        del self.labels[key][-fewer:], self.upstreams.variants[key][-fewer:]
        await self._apply(key, lambda hosts: not set(addresses) & set(hosts))
        await asyncio.sleep(DRAIN_S)
        await asyncio.gather(*(self._stop(label) for label in labels))

    async def add_variants(self, started: dict[Key, list[tuple[str, str]]]) -> list[Key]:
        """Variants loaded while the mesh runs (the spec names them, their adapters run: label,
        address): their clusters go into Envoy's file. Returns the variants Envoy reports healthy
        in time; the others are taken out of the file again (their adapters are the caller's)."""
        for key, replicas in started.items():
            self.labels[key] = [label for label, _ in replicas]
            self.upstreams.variants[key] = [address for _, address in replicas]
            self._numbers[key] = len(replicas)
        healthy = []
        for key, replicas in started.items():  # one file names them all; the first wait covers most
            if await self._apply(key, lambda hosts, replicas=replicas: all(hosts.get(a) == "healthy"
                                                                           for _, a in replicas)):
                healthy.append(key)
        return healthy

    def drop_variant(self, key: Key) -> None:
        """Forget a variant whose load failed (the spec no longer names it); rewrite the cluster file."""
        self.labels.pop(key, None)
        self.upstreams.variants.pop(key, None)
        self.clusters.write()

    async def _apply(self, key: Key, served: Callable[[dict[str, str]], bool]) -> bool:
        """Rename the new cluster file in and wait until Envoy's hosts for KEY satisfy SERVED."""
        self.clusters.write()
        deadline = time.monotonic() + APPLY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if served(await asyncio.to_thread(self.clusters.hosts, key)):
                    return True
            except (urllib.error.URLError, OSError):
                pass
            await asyncio.sleep(0.1)
        self._log(f"meshserve: Envoy did not apply the new replicas of {key[0]}:{key[1]} within "
                  f"{APPLY_TIMEOUT_S:.0f} s; see {self.clusters.log_path}")
        return False


class Autoscaler:
    """Samples each scalable variant's load and scales it, until cancelled."""

    def __init__(self, policies: dict[Key, ScalingPolicy], replicas: VariantReplicas, log: Callable[[str], None]):
        self.policies = policies
        self.replicas = replicas
        self._log = log
        self.states = {key: ScalingState(replicas=replicas.count(key)) for key in policies}
        self._refused: dict[Key, int] = {}  # Envoy's count of requests it found no replica for

    async def in_flight(self) -> dict[Key, int]:
        """Requests in flight per variant; for a variant at zero replicas, the requests that
        found none since the last sample (the router holds them while a replica starts)."""
        # The variant's own requests and the copies mirrored to it reach the same replicas.
        found = await asyncio.to_thread(self.replicas.clusters.loads, self.policies)
        loads = {}
        for key, load in found.items():
            waiting = load.none_healthy - self._refused.get(key, load.none_healthy)
            self._refused[key] = load.none_healthy
            loads[key] = waiting if self.replicas.count(key) == 0 else load.active
        return loads

    async def step(self) -> None:
        loads = await self.in_flight()
        for key, policy in self.policies.items():
            before = self.states[key].replicas
            self.states[key] = decide(policy, self.states[key], loads[key], time.monotonic())
            wanted = self.states[key].replicas
            if wanted != before:
                why = (f"{loads[key]} in flight, above {policy.target_in_flight:g} per replica" if wanted > before
                       else f"low load for {policy.cooldown_s:g} s, {loads[key]} in flight now")
                self._log(f"meshserve: scaling {key[0]}:{key[1]} from {before} to {wanted} replicas ({why})")
                await self.replicas.scale_to(key, wanted)
                self.states[key] = ScalingState(replicas=self.replicas.count(key), last_change=time.monotonic(),
                                                low_since=self.states[key].low_since)
                self._log(f"meshserve: {key[0]}:{key[1]} runs {self.replicas.count(key)} replicas")

    async def run(self) -> None:
        interval = get_settings().autoscale_interval_s
        while True:
            try:
                await self.step()
            except (urllib.error.URLError, OSError) as exc:
                self._log(f"meshserve: autoscaler could not read Envoy's stats ({exc}); trying again")
            except Exception as exc:  # noqa: BLE001 - the mesh keeps serving at its current size
                self._log(f"meshserve: autoscaler step failed ({type(exc).__name__}: {exc}); trying again")
            await asyncio.sleep(interval)
