"""Change a model's live traffic split: weights among its variants and fractions to its shadows.

A rollout is checked against the variants the spec deployed (only running versions can take
traffic), then the mesh routes are rendered again and the watched route file is replaced by
a rename. Envoy picks the new file up within milliseconds; requests already in flight finish
on the route they started with, so nothing is dropped, and Envoy never restarts.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from meshserve.core.errors import ManifestError, ModelNotFound
from meshserve.spec.deployment_spec import DeploymentSpec, Rollout
from meshserve.envoy.layout import EnvoyLayout, write_watched
from meshserve.envoy.routes import render_routes


class LiveRollouts:
    """The live split of every model in the mesh, and the route file that carries it.

    With STATE_PATH, every applied rollout is saved there and read back on start, so a
    restarted router agrees with the route file Envoy is still serving.
    """

    def __init__(self, spec: DeploymentSpec, layout: EnvoyLayout, state_path: Path | None = None,
                 rest: bool = False, direct_rest: bool = False, tapped: set[tuple[str, str]] = frozenset()):
        self.spec = spec
        self.layout = layout
        self.rest = rest  # the router serves REST behind Envoy (its cluster is in the bootstrap)
        self.direct_rest = direct_rest  # and the replicas too (their REST clusters are in the cluster file)
        self.tapped = set(tapped)  # variants Envoy sends straight to Triton, copying each call to a side tap
        self.state_path = state_path
        self._rollouts = {model: d.initial_rollout() for model, d in spec.models.items()}
        self._version = 1
        self._lock = threading.Lock()
        if state_path is not None and state_path.exists():
            self._load_state(state_path)

    def _load_state(self, path: Path) -> None:
        state = json.loads(path.read_text())
        self._version = int(state["version"])
        for model, saved in state["rollouts"].items():
            if model not in self.spec.models:
                continue
            rollout = Rollout.model_validate(saved)
            try:
                rollout.check_against(model, self.spec.models[model], str(path))
            except ManifestError:
                continue  # the spec changed under a reused run directory: its own split wins
            self._rollouts[model] = rollout

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        state = {"version": self._version,
                 "rollouts": {m: r.model_dump() for m, r in sorted(self._rollouts.items())}}
        temporary = self.state_path.with_name(f".{self.state_path.name}.tmp")
        temporary.write_text(json.dumps(state, indent=2))
        os.replace(temporary, self.state_path)

    @property
    def version_info(self) -> str:
        """The version of the route file last written; Envoy reports it once it serves it."""
        return str(self._version)

    def current(self, model: str) -> Rollout:
        if model not in self._rollouts:
            raise ModelNotFound(f"model '{model}' is not served by this mesh "
                                f"(served: {', '.join(sorted(self._rollouts))})")
        return self._rollouts[model]

    def routes(self) -> dict:
        return render_routes(self.spec, self._rollouts, self.version_info, rest=self.rest,
                             direct_rest=self.direct_rest, tapped=self.tapped, mesh_secret=self.layout.mesh_secret)

    def write_routes(self) -> str:
        """(Re)write the route file for the current split; returns its version_info."""
        with self._lock:
            write_watched(self.layout.routes_path, self.routes())
            return self.version_info

    def apply(self, model: str, weights: Mapping[str, int] | None = None,
              shadows: Mapping[str, float] | None = None) -> Rollout:
        """Set MODEL's weights and/or shadows (None keeps the current ones) and go live.

        Raises ModelNotFound for an unknown model and ManifestError (naming the field and the
        fix) for a split the deployment cannot carry; nothing changes then.
        """
        with self._lock:
            before = self.current(model)
            rollout = Rollout(
                weights=dict(before.weights if weights is None else weights),
                shadows=dict(before.shadows if shadows is None else shadows),
            )
            rollout.check_against(model, self.spec.models[model])
            # Unlisted variants keep running with weight 0, so a later rollout can bring them back.
            full_weights = {version: 0 for version in self._variant_order(model)} | rollout.weights
            rollout = Rollout(weights=full_weights, shadows={v: f for v, f in rollout.shadows.items() if f > 0})
            self._rollouts[model] = rollout
            self._version += 1
            try:
                write_watched(self.layout.routes_path, self.routes())
                self._save_state()
            except BaseException:
                self._rollouts[model] = before
                self._version -= 1
                raise
            return rollout

    def take_in(self, spec: DeploymentSpec) -> str:
        """Serve the models and variants SPEC adds (packages loaded while the mesh runs): a new
        model starts with its spec's split, a new variant of a served model at weight 0, so only
        requests naming its version reach it. Writes the routes; returns their version_info.
        Their clusters must already be in Envoy's cluster file (routes refuse unknown clusters)."""
        with self._lock:
            rollouts = dict(self._rollouts)
            for model, deployment in spec.models.items():
                if model not in rollouts:
                    rollouts[model] = deployment.initial_rollout()
                    continue
                before = rollouts[model]
                new = [v.version for v in deployment.variants if v.version not in before.weights]
                rollouts[model] = Rollout(weights={**before.weights, **{v: 0 for v in new}}, shadows=before.shadows)
            previous = (self.spec, self._rollouts)
            self.spec, self._rollouts = spec, rollouts
            self._version += 1
            try:
                write_watched(self.layout.routes_path, self.routes())
                self._save_state()
            except BaseException:
                self.spec, self._rollouts = previous
                self._version -= 1
                raise
            return self.version_info

    def _variant_order(self, model: str) -> list[str]:
        deployment = self.spec.models[model]
        return [v.version for v in deployment.variants]
