"""With no OTEL_* variables and no metrics address a server runs exactly as without
observability; the targets file `meshserve up` writes is what Prometheus's file_sd reads."""

from __future__ import annotations

import json

from conftest import EXAMPLES

from meshserve.core.model_package import load_package
from meshserve.core.settings import get_settings
from meshserve.observability.scrape_targets import ScrapeTargets
from meshserve.observability.telemetry import adapter_telemetry, router_telemetry


def test_everything_off_means_no_observer_and_no_interceptor(monkeypatch):
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("MESHSERVE_METRICS_LISTEN", raising=False)
    get_settings.cache_clear()
    try:
        adapter = adapter_telemetry(load_package(EXAMPLES / "breast_cancer"))
        router = router_telemetry()
    finally:
        get_settings.cache_clear()
    for telemetry in (adapter, router):
        assert telemetry.observers == [] and telemetry.interceptors == [] and telemetry.provider is None


def test_the_targets_file_is_prometheus_file_sd(tmp_path):
    targets = ScrapeTargets(tmp_path)
    address = targets.new_endpoint("meshserve-adapter", model="iris", version="2", replica="")
    targets.add("127.0.0.1:9901", "meshserve-envoy", metrics_path="/stats/prometheus")
    written = json.loads(targets.write().read_text())
    assert written == [
        {"targets": [address], "labels": {"job": "meshserve-adapter", "model": "iris", "version": "2"}},
        {"targets": ["127.0.0.1:9901"], "labels": {"job": "meshserve-envoy", "__metrics_path__": "/stats/prometheus"}},
    ]
    assert targets.describe()[1] == "meshserve-envoy: http://127.0.0.1:9901/stats/prometheus"
