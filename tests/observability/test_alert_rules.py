"""meshserve's Prometheus alerting rules (compose/prometheus/*-alerts.yml): valid for promtool, each
rule shown firing and staying quiet by its promtool unit tests, loaded by the compose
Prometheus, and reading only series meshserve serves.

That the rules evaluate on a running mesh's real series is checked against the watched mesh's
Prometheus (test_watching_the_mesh.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from metric_names import PROMETHEUS_OWN, metrics_read_by, served_series

RULES_DIR = ROOT / "compose" / "prometheus"
RULE_FILES = sorted(RULES_DIR.glob("*-alerts.yml"))
TEST_FILES = sorted(RULES_DIR.glob("*-alerts.test.yml"))
# What the issue asks an operator be paged on, and the alert that does it.
PAGES = {
    "a canary's error rate above its primary's": "MeshserveCanaryErrorRate",
    "a canary's p99 above its primary's": "MeshserveCanaryLatency",
    "drift": "MeshserveFeatureDrift",
    "quality below its threshold": "MeshserveQualityBelowThreshold",
    "an adapter restarting in a loop": "MeshserveAdapterRestartLoop",
    "records that could not be stored": "MeshserveRecordsLost",
}


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (scripts/setup.d/60-prometheus.sh installs Debian's prometheus)")
    return binary


def rules(path: Path) -> list[dict]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for path in RULE_FILES for rule in rules(path) if "alert" in rule}


def test_promtool_accepts_every_rules_file():
    assert RULE_FILES and len(TEST_FILES) == len(RULE_FILES)
    result = subprocess.run([promtool(), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("tests", TEST_FILES, ids=lambda p: p.name)
def test_the_rules_unit_tests_pass(tests):
    result = subprocess.run([promtool(), "test", "rules", tests.name], cwd=RULES_DIR, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_fails_a_rule_that_no_longer_does_what_its_test_says(tmp_path):
    """The unit tests bind the rules: loosening a threshold breaks them."""
    for path in RULE_FILES + TEST_FILES:
        shutil.copy(path, tmp_path / path.name)
    rules_file = tmp_path / "mesh-alerts.yml"
    rules_file.write_text(rules_file.read_text().replace("[15m])) >= 3", "[15m])) >= 4"))
    result = subprocess.run([promtool(), "test", "rules", "mesh-alerts.test.yml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "MeshserveAdapterRestartLoop" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet():
    firing, quiet = set(), set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(alerts()) <= firing, set(alerts()) - firing
    assert set(alerts()) <= quiet, set(alerts()) - quiet


def test_every_page_the_operator_needs_has_its_alert_with_a_severity_and_what_to_do():
    for what, name in PAGES.items():
        assert name in alerts(), f"no alert for {what}"
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_the_rules_read_only_series_meshserve_serves_or_records():
    served = served_series() | PROMETHEUS_OWN
    recorded = {rule["record"] for path in RULE_FILES for rule in rules(path) if "record" in rule}
    for path in RULE_FILES:
        for rule in rules(path):
            unknown = metrics_read_by(rule["expr"]) - served - recorded
            assert not unknown, f"{path.name}: {rule.get('alert') or rule.get('record')} reads {unknown}"


def test_the_compose_prometheus_loads_every_rules_file_and_no_test_file():
    config = yaml.safe_load((ROOT / "compose" / "prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "compose" / "docker-compose.yaml").read_text())
    mounts = dict(v.removesuffix(":ro").split(":", 1) for v in compose["services"]["prometheus"]["volumes"])
    config_dir = Path(mounts["./prometheus.yml"]).parent
    # The container sees compose/'s layout, so the paths resolve alike there and here.
    assert mounts["./prometheus"] == str(config_dir / "prometheus")
    loaded = {p for pattern in config["rule_files"] for p in (ROOT / "compose").glob(pattern)}
    assert loaded == set(RULE_FILES)
    result = subprocess.run([promtool(), "check", "config", str(ROOT / "compose" / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout + result.stderr


def test_the_launcher_counts_each_process_restarts_from_zero(tmp_path):
    """A restart counter that first appears at 1 would hide the first restart from increase()."""
    from types import SimpleNamespace

    from prometheus_client import REGISTRY

    from meshserve.observability.mesh_metrics import MeshMetrics

    metrics = MeshMetrics(tmp_path)
    metrics.adapter_env("alerts-model@7#0", "alerts-model", "7")
    labels = {"process": "adapter", "model": "alerts-model", "version": "7"}
    assert REGISTRY.get_sample_value("meshserve_process_restarts_total", labels) == 0
    metrics.restarted(SimpleNamespace(spec=SimpleNamespace(label="alerts-model@7#0")))
    assert REGISTRY.get_sample_value("meshserve_process_restarts_total", labels) == 1
