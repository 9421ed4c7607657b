"""meshserve's Grafana dashboards: the JSON compose/ ships is exactly what the code writes, Grafana's
provisioning finds it and the Prometheus it names, and every query reads series meshserve serves.

That each query returns data on a running mesh is checked against the real Prometheus that
scrapes the watched mesh (test_watching_the_mesh.py, with dashboard_queries.py), so that no
second mesh is started for it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import yaml
from conftest import ROOT
from dashboard_queries import dashboard_queries, model_variable_query
from metric_names import PROMETHEUS_OWN, metrics_read_by, served_series

from meshserve.observability.dashboard_panels import DATASOURCE_UID
from meshserve.observability.dashboards import DASHBOARDS, rendered

GRAFANA = ROOT / "compose" / "grafana"


def panels(name: str) -> list[dict]:
    return json.loads(rendered()[name])["panels"]


def test_the_checked_in_dashboards_are_what_the_code_writes():
    shipped = {p.name: p.read_text() for p in sorted((GRAFANA / "dashboards").glob("*.json"))}
    assert set(shipped) == set(rendered()), "run: meshserve grafana dashboards compose/grafana/dashboards"
    for name, text in rendered().items():
        assert shipped[name] == text, f"{name} is stale; run: meshserve grafana dashboards compose/grafana/dashboards"


def test_the_cli_writes_the_same_files(tmp_path):
    result = subprocess.run([sys.executable, "-m", "meshserve.cli", "grafana", "dashboards", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    written = {p.name: p.read_text() for p in (tmp_path / "out").glob("*.json")}
    assert written == rendered()
    assert sorted(result.stdout.split()) == sorted(str(tmp_path / "out" / name) for name in written)


def test_grafana_is_provisioned_with_the_compose_prometheus_and_the_dashboards_folder():
    compose = yaml.safe_load((ROOT / "compose" / "docker-compose.yaml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.removesuffix(":ro").split(":", 1) for volume in grafana["volumes"])
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    prometheus = next(d for d in datasources["datasources"] if d["type"] == "prometheus")
    assert prometheus["uid"] == DATASOURCE_UID
    # Prometheus shares the meshserve container's network: it answers on that service's name.
    assert compose["services"]["prometheus"]["network_mode"] == "service:meshserve"
    assert prometheus["url"] == "http://meshserve:9090"
    assert "9090:9090" in compose["services"]["meshserve"]["ports"]
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "meshserve.yaml").read_text())
    assert mounts["./grafana/dashboards"] == providers["providers"][0]["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(mounts["./grafana/dashboards"] + "/") and home.rsplit("/", 1)[1] in rendered()


def test_every_panel_queries_the_datasource_variable_with_its_own_ref_id():
    for name in rendered():
        board = json.loads(rendered()[name])
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["datasource"]["current"]["value"] == DATASOURCE_UID
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            refs = [t["refId"] for t in panel["targets"]]
            assert refs == sorted(set(refs)) and refs[0] == "A", (name, panel["title"])
            assert {t["datasource"]["uid"] for t in panel["targets"]} == {"${datasource}"}


def test_the_model_dashboard_is_templated_on_the_model():
    assert model_variable_query() == 'label_values(meshserve_requests_total{side="adapter"}, model)'
    for panel in panels("meshserve-model.json"):
        for query in panel.get("targets", []):
            assert '"$model"' in query["expr"], f"{panel['title']} ignores $model: {query['expr']}"
    assert set(DASHBOARDS) == {"meshserve-overview", "meshserve-model", "meshserve-health"}


def test_the_model_dashboard_shows_each_version_side_by_side():
    titles = " / ".join(p["title"] for p in panels("meshserve-model.json"))
    for subject in ("Requests per second", "Errors", "Latency", "Drift", "agreement", "accuracy", "Replicas"):
        assert subject in titles, titles
    by_version = [t["expr"] for p in panels("meshserve-model.json") for t in p.get("targets", [])
                  if p["type"] == "timeseries" and "threshold" not in t.get("legendFormat", "")]
    assert all("version" in expr for expr in by_version), [e for e in by_version if "version" not in e]


def test_every_metric_a_dashboard_reads_is_one_meshserve_or_envoy_serves():
    served = served_series() | PROMETHEUS_OWN
    for query in dashboard_queries():
        read = metrics_read_by(query.expr)
        assert read, f"{query.where}: no metric in {query.expr}"
        unknown = {m for m in read if m not in served and not m.startswith("envoy_")}
        assert not unknown, f"{query.where} reads {unknown}, which nothing serves"


def test_a_misspelt_metric_is_caught():
    assert metrics_read_by('sum by (model) (rate(meshserve_request_total{model="$model"}[$__rate_interval]))') == \
        {"meshserve_request_total"}
    assert "meshserve_request_total" not in served_series()
