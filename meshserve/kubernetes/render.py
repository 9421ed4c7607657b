"""All manifests of a mesh from its deployment spec and packages, grouped into the files they go to.

`render_cluster` is pure: spec, packages and options in, objects out. `write` puts each group in
its own file under the output folder (`kubectl apply -f DIR` applies them all) and removes
files an earlier render wrote that no longer belong, such as a variant taken out of the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshserve.kubernetes import records
from meshserve.kubernetes.envoy_config import config_data, render_for_cluster
from meshserve.kubernetes.models_table import models_table
from meshserve.kubernetes.naming import PART_OF, variant_name
from meshserve.kubernetes.options import ClusterOptions
from meshserve.kubernetes.packages import PackageRef
from meshserve.kubernetes.parts import envoy_objects, network_policies, router_objects, variant_objects
from meshserve.spec.deployment_spec import DeploymentSpec

HEADER = "# Rendered by `meshserve k8s render`"
_CLUSTER_SCOPED = {"Namespace"}


class _PlainDumper(yaml.SafeDumper):
    """No `&id001` anchors where builders share a dict: manifests are read by people and diffed."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # ConfigMap files (Envoy's YAML, the models table) as literal blocks, readable as they are.
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_PlainDumper.add_representer(str, _text)


@dataclass
class ClusterManifests:
    files: dict[str, list[dict[str, Any]]]  # file name -> the objects in it, in apply order
    notes: list[str] = field(default_factory=list)  # what the operator must do or know

    def objects(self) -> list[dict[str, Any]]:
        return [obj for name in sorted(self.files) for obj in self.files[name]]

    def write(self, out: Path, source: str) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, objects in sorted(self.files.items()):
            path = out / name
            text = (f"{HEADER} from {source}.\n# Change the spec and render again rather than editing this file.\n"
                    + yaml.dump_all(objects, Dumper=_PlainDumper, sort_keys=False, width=120))
            path.write_text(text)
            written.append(path)
        for stale in sorted(out.glob("*.yaml")):
            if stale not in written and stale.read_text().startswith(HEADER):
                stale.unlink()
        return written


def render_cluster(spec: DeploymentSpec, packages: list[PackageRef], options: ClusterOptions) -> ClusterManifests:
    """SPEC must be resolved against PACKAGES (`resolve_spec`): every deployed version has a package."""
    by_key = {(p.name, p.version): p for p in packages}
    envoy = render_for_cluster(spec, options)
    files: dict[str, list[dict[str, Any]]] = {
        "00-namespace.yaml": [{"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": options.namespace, "labels": {"app.kubernetes.io/part-of": PART_OF}}}],
        "router.yaml": router_objects(spec, models_table(spec, packages, options), options),
        "envoy.yaml": envoy_objects(envoy, config_data(envoy), options, tls=spec.security.tls is not None),
        "network-policies.yaml": network_policies(),
    }
    secret = records.records_secret(spec.records, options)
    if secret is not None:
        files["01-records-secret.yaml"] = [secret]
    for model, deployment in sorted(spec.models.items()):
        for version, replicas in deployment.replica_ranges.items():
            files[f"variant-{variant_name(model, version)}.yaml"] = variant_objects(
                model, version, replicas, by_key[(model, version)], spec, options)
    for objects in files.values():
        for obj in objects:
            if obj["kind"] not in _CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = options.namespace
    notes = records.notes(spec.records, options)
    planned = sorted(m for m, d in spec.models.items() if d.rollout_plan is not None)
    if planned:
        notes.append(f"rollout plans ({', '.join(planned)}) are not run on a cluster: the router does not own "
                     "Envoy's routes there; step the weights in meshserve.yaml and apply again (docs/kubernetes.md)")
    return ClusterManifests(files, notes)
