"""The metrics side of `meshserve up`: a metrics port for each process it starts, the targets
file Prometheus reads, and the supervisor's own endpoint counting restarts."""

from __future__ import annotations

from pathlib import Path

from meshserve.core.ports import free_port
from meshserve.core.settings import Settings
from meshserve.observability.metrics import RESTARTS, serve_metrics
from meshserve.observability.scrape_targets import ScrapeTargets


class MeshMetrics:
    def __init__(self, run_dir: Path):
        self.targets = ScrapeTargets(run_dir)
        self._children: dict[str, tuple[str, str, str]] = {}  # supervisor label -> process, model, version
        self._endpoints: dict[str, str] = {}  # supervisor label -> its /metrics address
        self._started = False

    def adapter_env(self, label: str, model: str, version: str) -> dict[str, str]:
        replica = label.partition("#")[2]
        self._child(label, "adapter", model, version)
        self._endpoints[label] = self.targets.new_endpoint("meshserve-adapter", model=model, version=version,
                                                           replica=replica)
        return Settings.child_environment(metrics_listen=self._endpoints[label])

    def replicas_changed(self, removed: list[str] = ()) -> None:
        """Replicas were added (their endpoints are known already) or REMOVED (labels): rewrite the targets."""
        gone = {self._endpoints.pop(label, None) for label in removed}
        self.targets.targets = [t for t in self.targets.targets if t.address not in gone]
        if self._started:
            self.targets.write()

    def router_env(self) -> dict[str, str]:
        self._child("router", "router")
        return Settings.child_environment(metrics_listen=self.targets.new_endpoint("meshserve-router"))

    def add_recorder(self) -> None:
        """The recorder's restarts are counted like any process's (its own metrics port serves drift)."""
        self._child("recorder", "recorder")

    def add_envoy(self, admin: str) -> None:
        self._child("envoy", "envoy")
        self.targets.add(admin, "meshserve-envoy", metrics_path="/stats/prometheus")

    def _child(self, label: str, process: str, model: str = "", version: str = "") -> None:
        self._children[label] = (process, model, version)
        # Counted from 0 while the process runs: a counter that first appears at 1 hides its
        # first restart from increase(), and the restart-loop alert counts every one.
        RESTARTS.labels(process, model, version)

    def restarted(self, child) -> None:
        process, model, version = self._children.get(child.spec.label, (child.spec.label, "", ""))
        RESTARTS.labels(process, model, version).inc()

    def start(self) -> list[str]:
        """Serve the launcher's own metrics, write the targets file; the lines `up` prints."""
        self._started = True
        own = f"{self.targets.host}:{free_port(self.targets.host)}"
        serve_metrics(own)
        self.targets.add(own, "meshserve-launcher")
        path = self.targets.write()
        return [f"Prometheus targets (file_sd) in {path}", *(f"metrics {line}" for line in self.targets.describe())]
