"""The models table the router reads (`meshserve/spec/model_table.py`), for the router pods.

The same JSON `meshserve up` writes, with paths inside the image and every call sent to the
Envoy mesh Service. No `envoy` control section: on a cluster the router does not own Envoy's
files (they are a ConfigMap), so the control API's SetRollout answers FAILED_PRECONDITION and
rollouts go through the ConfigMap (docs/kubernetes.md).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from meshserve.kubernetes.naming import GRPC_PORT, MESH_PORT, MESH_SERVICE, service_host, variant_name
from meshserve.kubernetes.options import ClusterOptions
from meshserve.kubernetes.packages import PackageRef
from meshserve.kubernetes.records import router_store_url
from meshserve.spec.deployment_spec import DeploymentSpec
from meshserve.spec.model_table import ModelTable
from meshserve.spec.run_folder import RunFolder
from meshserve.spec.table_control import TableControl

TABLE_DIR = "/etc/meshserve/router"
# The router pod's folder stands in for a run folder: the table has the name `meshserve up` gives it.
TABLE_KEY = RunFolder(Path(TABLE_DIR)).models_table.name


def models_table(spec: DeploymentSpec, packages: list[PackageRef], options: ClusterOptions) -> str:
    """The table's JSON text; written by ModelTable.write itself so the format has one author."""
    by_key = {(p.name, p.version): p for p in packages}
    deployed = [(by_key[(model, version)],
                 f"{service_host(variant_name(model, version), options.namespace, options.cluster_domain)}:{GRPC_PORT}")
                for model, deployment in sorted(spec.models.items()) for version in deployment.replicas]
    mesh = f"{service_host(MESH_SERVICE, options.namespace, options.cluster_domain)}:{MESH_PORT}"
    store = router_store_url(spec.records)
    with tempfile.TemporaryDirectory(prefix="meshserve-k8s-") as folder:
        path = Path(folder) / TABLE_KEY
        ModelTable.write(path, deployed, mesh_address=mesh, control=TableControl(records_store=store or None))
        return json.dumps(json.loads(path.read_text()), indent=2) + "\n"
