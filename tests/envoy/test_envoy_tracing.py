"""Envoy's OpenTelemetry tracer appears in the bootstrap only when tracing is on, and then passes
`envoy --mode validate` on both listeners."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshserve.envoy.layout import EnvoyLayout, UpstreamAddresses
from meshserve.envoy.process import validate_config
from meshserve.envoy.render import render
from meshserve.spec.deployment_spec import parse_spec

SPEC = {"models": {"iris": {"variants": [{"version": "1", "weight": 90}, {"version": "2", "weight": 10}],
                            "shadows": [{"version": "3", "fraction": 0.5}]}}}


def bootstrap(tmp_path: Path) -> dict:
    spec = parse_spec(SPEC, "meshserve.yaml")
    layout = EnvoyLayout(tmp_path / "envoy", front="127.0.0.1:18001", mesh="127.0.0.1:18002", admin="127.0.0.1:18003")
    config = render(layout, spec, UpstreamAddresses.sequential(spec, "127.0.0.1", 19000))
    config.write(layout)
    return config.bootstrap


def managers(config: dict) -> dict[str, dict]:
    return {listener["name"]: listener["filter_chains"][0]["filters"][0]["typed_config"]
            for listener in config["static_resources"]["listeners"]}


def test_without_otel_variables_nothing_is_traced(tmp_path, monkeypatch):
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    config = bootstrap(tmp_path)
    assert all("tracing" not in m for m in managers(config).values())
    assert [c["name"] for c in config["static_resources"]["clusters"]] == ["router"]


@pytest.mark.parametrize("sampler, ratio", [("parentbased_always_on", ""), ("parentbased_traceidratio", "0.25")])
def test_with_otlp_both_listeners_trace_and_envoy_accepts_it(tmp_path, monkeypatch, sampler, ratio):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.example:4317")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", ratio)
    config = bootstrap(tmp_path)
    validate_config(config)
    front, mesh = managers(config)["front"], managers(config)["mesh"]
    for manager in (front, mesh):
        assert manager["tracing"]["provider"]["name"] == "envoy.tracers.opentelemetry"
        assert manager["http_filters"][0]["name"] == "envoy.filters.http.health_check"  # never traced
    front_root = front["tracing"]["provider"]["typed_config"]["sampler"]["typed_config"]["wrapped_sampler"]
    if ratio:
        assert front_root["typed_config"]["sampling_percentage"] == {"numerator": 250_000, "denominator": "MILLION"}
    else:
        assert front_root["name"].endswith("always_on")
    # The mesh starts no trace of its own: only the router's continue.
    mesh_root = mesh["tracing"]["provider"]["typed_config"]["sampler"]["typed_config"]["wrapped_sampler"]
    assert mesh_root["typed_config"]["sampling_percentage"]["numerator"] == 0
    collector = next(c for c in config["static_resources"]["clusters"] if c["name"] == "opentelemetry_collector")
    address = collector["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert (address["address"], address["port_value"]) == ("collector.example", 4317)
