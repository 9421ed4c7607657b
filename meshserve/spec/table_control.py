"""The models table's `control` section: what `meshserve up` tells the router about the mesh
beyond the models themselves (where the records are, the run folder's files, Envoy's addresses).

The launcher writes it, the router's data and control planes read it (at start and at each
reload of a rewritten table), and `meshserve k8s render` writes a cluster's. One typed model
for all of them, so a field cannot be written under one name and read under another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Key = tuple[str, str]  # (model, version)


class EnvoyControl(BaseModel):
    """The Envoy `meshserve up` runs: where its files live and where it listens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_dir: Path = Field(description="Envoy's folder in the run folder (its layout: envoy/layout.py).")
    front: str = Field(description="host:port clients connect to.")
    mesh: str = Field(description="host:port of the mesh listener the router sends its own inferences to.")
    admin: str = Field(description="host:port of Envoy's admin interface.")
    rest: bool = Field(False, description="The router serves REST behind Envoy (its cluster is in the bootstrap).")
    direct_rest: bool = Field(False, description="The replicas serve REST too (their clusters are in the cluster file).")
    tapped: list[Key] = Field(default_factory=list, description="Variants Envoy sends straight to Triton, "
                              "copying each call to a side tap.")


class TableControl(BaseModel):
    """The control section; a field left at its default is not written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    records_store: str | None = Field(None, description="URL of the records store; None: the mesh keeps no records.")
    models_dir: str = Field("", description="The models folder the mesh serves (Deploy loads new versions from it).")
    watch_interval_s: float = Field(0, description="How often the launcher looks at the models folder; 0: never.")
    deployment: Path | None = Field(None, description="The resolved deployment spec (RunFolder.deployment); "
                                    "None without Envoy.")
    rollout_state: Path | None = Field(None, description="RunFolder.rollout_state, behind Envoy.")
    deployment_log: Path | None = Field(None, description="RunFolder.deployment_log, behind Envoy.")
    progressive_state: Path | None = Field(None, description="RunFolder.progressive_state, behind Envoy.")
    envoy: EnvoyControl | None = Field(None, description="The Envoy the router programs; None without one (or "
                                       "on Kubernetes, where Envoy's files are a ConfigMap).")
    cold_variants: list[Key] = Field(default_factory=list, description="Variants that scale to zero: a request "
                                     "finding no replica waits for the one the launcher starts.")

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True)
