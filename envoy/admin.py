"""Envoy's admin interface: readiness, the route version being served, stats."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request

from meshserve.envoy.layout import MESH_ROUTES


class EnvoyError(RuntimeError):
    """Envoy refused a configuration, did not come up, or did not apply a change in time."""


class EnvoyAdmin:
    """Envoy's admin interface: readiness, the route version being served, stats."""

    def __init__(self, address: str):
        self.address = address

    def get(self, path: str, timeout: float = 2.0) -> str:
        with urllib.request.urlopen(f"http://{self.address}{path}", timeout=timeout) as response:
            return response.read().decode()

    def routes_version(self) -> str | None:
        """version_info of the mesh routes Envoy is serving now."""
        dump = json.loads(self.get("/config_dump?resource=dynamic_route_configs"))
        for config in dump.get("configs", []):
            if config.get("route_config", {}).get("name") == MESH_ROUTES:
                return config.get("version_info")
        return None

    def wait_for_routes(self, version_info: str, timeout: float = 10.0) -> None:
        """Block until Envoy serves the route file with this version_info or a later one (renames apply in ms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            serving = self.routes_version()
            # A later rollout may already have replaced this one; that counts as applied.
            if serving == version_info or (serving or "").isdigit() and version_info.isdigit() \
                    and int(serving) >= int(version_info):
                return
            time.sleep(0.02)
        raise EnvoyError(f"Envoy did not apply routes version {version_info} within {timeout:.0f} s "
                         f"(serving {self.routes_version()})")

    def hosts(self, cluster: str) -> dict[str, str]:
        """The endpoints Envoy serves CLUSTER with now: address -> health flags ("healthy" when none)."""
        found = {}
        for line in self.get("/clusters").splitlines():
            name, _, rest = line.partition("::")
            address, _, field = rest.partition("::")
            if name == cluster and field.startswith("health_flags::"):
                found[address] = field.removeprefix("health_flags::")
        return found

    def stats(self, prefix: str = "") -> dict[str, int]:
        """Counters and gauges whose names start with PREFIX."""
        values = {}
        for line in self.get("/stats?filter=" + urllib.parse.quote("^" + re.escape(prefix))).splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                values[name] = int(value)
        return values
