"""Every file and folder of a mesh's run folder, and of the records folder its processes share.

`meshserve up` writes the run folder (RUN_DIR, a temporary folder unless `--run-dir` names
one); the router, Envoy, the recorder and the adapters read and write parts of it. They meet
through these files, so the names are spelled here once: a process asks `RunFolder` for a path
instead of joining a file name of its own. Envoy's own files are its sub-layout
(envoy/layout.py's `EnvoyLayout`), rooted at `RunFolder.envoy_dir`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from meshserve.spec.model_table import loaded_path


@dataclass(frozen=True)
class RunFolder:
    """RUN_DIR of one mesh, as `meshserve up` lays it out."""

    root: Path

    @property
    def models_table(self) -> Path:
        """The router's models table (meshserve/spec/model_table.py), rewritten while the mesh runs."""
        return self.root / "models.json"

    @property
    def table_acknowledgement(self) -> Path:
        """Where the router acknowledges the table generation it serves."""
        return loaded_path(self.models_table)

    @property
    def deployment(self) -> Path:
        """The resolved deployment spec the mesh runs (JSON), rewritten with the models table."""
        return self.root / "deployment.json"

    @property
    def rollout_state(self) -> Path:
        """Every model's live split, so a restarted router agrees with the routes Envoy serves."""
        return self.root / "rollouts.json"

    @property
    def progressive_state(self) -> Path:
        """Where each rollout plan stands, so a restarted router continues where it was."""
        return self.root / "progressive.json"

    @property
    def deployment_log(self) -> Path:
        """The append-only deployment log (meshserve/spec/deployment_log.py)."""
        return self.root / "deployment-log.jsonl"

    @property
    def drift_plan(self) -> Path:
        """What the recorder's drift monitor checks, for which models (sidecars/drift/plan.py)."""
        return self.root / "drift.json"

    @property
    def envoy_dir(self) -> Path:
        """Envoy's configuration, logs and base id (its layout: envoy/layout.py)."""
        return self.root / "envoy"

    @property
    def logs_dir(self) -> Path:
        """Logs of the servers adapters start themselves (tritonserver)."""
        return self.root / "logs"

    @property
    def scrape_targets(self) -> Path:
        """Prometheus's file_sd targets naming every process's metrics endpoint."""
        return self.root / "prometheus-targets.json"

    def triton_endpoint(self, label: str) -> Path:
        """Where the Triton adapter of replica LABEL (`model:version#n`) says where its Triton listens."""
        return self.root / "triton" / f"{label.replace(':', '-').replace('#', '-')}.json"


@dataclass(frozen=True)
class RecordsFolder:
    """The folder of the record spools (and the default SQLite store) every process of a mesh
    shares: `MESHSERVE_RECORDS_DIR`, by default MODELS_DIR/.meshserve/records."""

    root: Path

    @classmethod
    def default_for(cls, models_dir: Path) -> "RecordsFolder":
        return cls(models_dir / ".meshserve" / "records")

    @property
    def spool(self) -> Path:
        """Where each process spools its records before the recorder moves them into the store."""
        return self.root / "spool"

    @property
    def front_refusals(self) -> Path:
        """The log of inferences Envoy's front answered itself, which the recorder records too."""
        return self.root / "front-refusals.log"

    @property
    def store_file(self) -> Path:
        """The SQLite records store when meshserve.yaml's `records.store` names none."""
        return self.root / "records.db"
