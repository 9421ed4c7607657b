"""The Prometheus endpoints of one mesh, and the `file_sd` targets file that names them.

`meshserve up` gives every process it starts a metrics port of its own (passed as
MESHSERVE_METRICS_LISTEN), adds Envoy's admin `/stats/prometheus` and its own endpoint (the
supervisor's restart counts), and writes RunFolder.scrape_targets (a `file_sd` file), which a
Prometheus `file_sd_configs` entry reads (see compose/prometheus.yml):

    [{"targets": ["127.0.0.1:40111"], "labels": {"job": "meshserve-adapter", "model": "iris", ...}}]

The file is rewritten atomically, so Prometheus never reads half of it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from meshserve.core.ports import free_port
from meshserve.spec.run_folder import RunFolder



@dataclass
class Target:
    address: str
    job: str
    labels: dict[str, str] = field(default_factory=dict)
    metrics_path: str = "/metrics"

    def as_file_sd(self) -> dict:
        labels = {"job": self.job, **self.labels}
        if self.metrics_path != "/metrics":
            labels["__metrics_path__"] = self.metrics_path
        return {"targets": [self.address], "labels": labels}

    @property
    def url(self) -> str:
        return f"http://{self.address}{self.metrics_path}"


class ScrapeTargets:
    def __init__(self, run_dir: Path, host: str = "127.0.0.1"):
        self.path = RunFolder(run_dir).scrape_targets
        self.host = host
        self.targets: list[Target] = []

    def new_endpoint(self, job: str, **labels: str) -> str:
        """A free host:port for a process's /metrics, remembered as a target."""
        address = f"{self.host}:{free_port(self.host)}"
        self.targets.append(Target(address, job, {k: v for k, v in labels.items() if v}))
        return address

    def add(self, address: str, job: str, metrics_path: str = "/metrics", **labels: str) -> None:
        self.targets.append(Target(address, job, dict(labels), metrics_path))

    def write(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text(json.dumps([t.as_file_sd() for t in self.targets], indent=2))
        os.replace(temporary, self.path)
        return self.path

    def describe(self) -> list[str]:
        return [f"{t.job}{' ' + ' '.join(f'{k}={v}' for k, v in t.labels.items()) if t.labels else ''}: {t.url}"
                for t in self.targets]
