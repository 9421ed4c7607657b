"""A rollout on a cluster is a new ConfigMap: Envoy applies the routes file the kubelet swaps in.

The kubelet updates a mounted ConfigMap the way its atomic writer does: the files are links
through `..data`, which is pointed at a new timestamped folder by renaming a fresh link over
it. Here a real Envoy runs the rendered cluster configuration (addresses moved to free local
ports, paths to a temporary folder) and must serve the new split after such a swap.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import yaml
from conftest import free_port

from meshserve.envoy.layout import to_yaml
from meshserve.envoy.process import EnvoyProcess
from meshserve.kubernetes.envoy_config import (
    BOOTSTRAP_KEY, CLUSTERS_KEY, CONFIG_ROOT, ROUTES_KEY, config_data, render_for_cluster)
from meshserve.kubernetes.options import ClusterOptions
from meshserve.spec.deployment_spec import parse_spec


def spec(weights: dict[str, int]):
    return parse_spec({"models": {"iris": {"variants": [{"version": v, "weight": w} for v, w in weights.items()]}}},
                      "meshserve.yaml")


def kubelet_write(folder: Path, name: str, text: str) -> None:
    """What the kubelet's atomic writer does to a ConfigMap volume on an update."""
    folder.mkdir(parents=True, exist_ok=True)
    old = os.readlink(folder / "..data") if (folder / "..data").is_symlink() else None
    fresh = folder / f"..{time.time_ns()}"
    fresh.mkdir()
    (fresh / name).write_text(text)
    (folder / "..data_tmp").symlink_to(fresh.name)
    os.replace(folder / "..data_tmp", folder / "..data")
    if not (folder / name).is_symlink():
        (folder / name).symlink_to(f"..data/{name}")
    if old:
        shutil.rmtree(folder / old)


def routes_version(data: dict[str, str]) -> str:
    return yaml.safe_load(data[ROUTES_KEY])["version_info"]


def test_envoy_serves_the_new_split_once_the_kubelet_swaps_the_configmap(tmp_path):
    options = ClusterOptions()
    before = config_data(render_for_cluster(spec({"1": 90, "2": 10}), options))
    after = config_data(render_for_cluster(spec({"1": 50, "2": 50}), options))
    assert before[CLUSTERS_KEY] == after[CLUSTERS_KEY] and routes_version(before) != routes_version(after)

    # The pod's mount points, moved under tmp_path; listeners and admin on free local ports.
    root = tmp_path / "etc"
    bootstrap = yaml.safe_load(before[BOOTSTRAP_KEY].replace(str(CONFIG_ROOT), str(root)))
    admin = f"127.0.0.1:{free_port()}"
    bootstrap["admin"]["address"]["socket_address"].update(address="127.0.0.1", port_value=int(admin.split(":")[1]))
    for listener in bootstrap["static_resources"]["listeners"]:
        listener["address"]["socket_address"].update(address="127.0.0.1", port_value=free_port())
    kubelet_write(root / "clusters", CLUSTERS_KEY, before[CLUSTERS_KEY])
    kubelet_write(root / "routes", ROUTES_KEY, before[ROUTES_KEY])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "bootstrap.yaml").write_text(to_yaml(bootstrap))

    with EnvoyProcess(run_dir, admin) as envoy:
        envoy.admin.wait_for_routes(routes_version(before))
        kubelet_write(root / "routes", ROUTES_KEY, after[ROUTES_KEY])
        envoy.admin.wait_for_routes(routes_version(after), timeout=10)
        assert envoy.running(), envoy.log_tail()
