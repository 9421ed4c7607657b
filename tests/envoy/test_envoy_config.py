"""The deployment spec and the Envoy configuration rendered from it.

Every rendered configuration is checked by the real Envoy binary (`envoy --mode validate`);
malformed specs and rollouts are refused with the file, the field and the fix.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import meshserve_argv
from models.variant_packages import write_spec, write_variant_packages

from meshserve.core.errors import ManifestError
from meshserve.spec.deployment_spec import ModelDeployment, Rollout, Variant, load_spec, parse_spec, resolve_spec
from meshserve.envoy.admin import EnvoyError
from meshserve.envoy.layout import (
    EnvoyLayout, UpstreamAddresses, fallback_cluster, mirror_cluster, variant_cluster, write_watched)
from meshserve.envoy.process import validate_config
from meshserve.envoy.render import render
from meshserve.envoy.rollouts import LiveRollouts

CANARY = {
    "models": {
        "iris": {
            "variants": [{"version": "1", "weight": 90, "replicas": 2}, {"version": "2", "weight": 10}],
            "shadows": [{"version": "3", "fraction": 0.25}],
            "routing_key_header": "x-user-id",
            "fallback": "1",
            "timeouts": {"request_s": 5, "connect_s": 0.5},
        },
    }
}
SPECS = {
    "one model, defaults": {"models": {"iris": {"variants": [{"version": "1", "weight": 100}]}}},
    "canary with shadow, sticky key and fallback": CANARY,
    "all traffic on the new version": {"models": {"iris": {"variants": [
        {"version": "1", "weight": 0}, {"version": "2", "weight": 100}]}}},
    "two models, shadow at fraction one": {"models": {
        "iris": {"variants": [{"version": "1", "weight": 1}], "shadows": [{"version": "2", "fraction": 1.0}]},
        "digits": {"variants": [{"version": "a", "weight": 3, "replicas": 3}, {"version": "b", "weight": 1}]},
    }},
    "limits, autoscaled replicas and a router limit": {"models": {"iris": {
        "variants": [{"version": "1", "weight": 1, "replicas": {"min": 1, "max": 4}}],
        "shadows": [{"version": "2", "fraction": 0.5, "replicas": {"min": 1, "max": 2}}],
        "limits": {"max_in_flight": 40, "max_pending": 10, "shadow_max_in_flight": 3},
        "autoscaling": {"target_in_flight": 3, "scale_up_after_s": 0, "cooldown_s": 5}}},
        "limits": {"router_max_in_flight": 100}},
}


def layout_in(tmp_path: Path) -> EnvoyLayout:
    return EnvoyLayout(tmp_path / "envoy", front="127.0.0.1:18001", mesh="127.0.0.1:18002", admin="127.0.0.1:18003")


def rendered(raw: dict, tmp_path: Path, rollouts=None):
    spec = parse_spec(raw, "meshserve.yaml")
    layout = layout_in(tmp_path)
    return spec, layout, render(layout, spec, UpstreamAddresses.sequential(spec, "127.0.0.1", 19000), rollouts)


@pytest.mark.parametrize("name", SPECS)
def test_every_rendered_config_passes_envoy_validate(tmp_path, name):
    _, layout, config = rendered(SPECS[name], tmp_path)
    config.write(layout)
    validate_config(config.bootstrap)  # the bootstrap as Envoy starts with it (watched files present)
    validate_config(config.inlined())  # and with the watched clusters and routes written in


def test_envoy_validate_catches_what_the_renderer_must_never_produce(tmp_path):
    _, _, config = rendered(CANARY, tmp_path)
    broken = config.inlined()
    broken["static_resources"]["clusters"][1]["lb_policy"] = "NO_SUCH_POLICY"
    with pytest.raises(EnvoyError, match="NO_SUCH_POLICY"):
        validate_config(broken)


def test_a_canary_route_splits_by_weight_mirrors_shadows_and_pins_named_versions(tmp_path):
    _, _, config = rendered(CANARY, tmp_path)
    routes = config.routes["resources"][0]["virtual_hosts"][0]["routes"]
    split = next(r for r in routes if r["name"] == "iris|split")["route"]
    weights = {c["name"]: c["weight"] for c in split["weighted_clusters"]["clusters"]}
    # Variant 2 falls back to variant 1 through an aggregate cluster; variant 1 is the fallback itself.
    assert weights == {variant_cluster("iris", "1"): 90, fallback_cluster("iris", "2"): 10}
    assert split["weighted_clusters"]["use_hash_policy"] is True
    assert split["hash_policy"] == [{"header": {"header_name": "x-user-id"}}]
    (mirror,) = split["request_mirror_policies"]
    assert mirror["cluster"] == mirror_cluster("iris", "3")
    assert mirror["runtime_fraction"]["default_value"] == {"numerator": 250_000, "denominator": "MILLION"}
    assert mirror["request_headers_mutations"][0]["append"]["header"] == {"key": "x-meshserve-role", "value": "shadow"}
    pinned = {r["name"]: r["route"]["cluster"] for r in routes if "|pinned|" in r["name"]}
    assert pinned == {f"iris|pinned|{v}": variant_cluster("iris", v) for v in ("1", "2", "3")}
    clusters = {c["name"]: c for c in config.clusters["resources"]}
    assert len(clusters[variant_cluster("iris", "1")]["load_assignment"]["endpoints"][0]["lb_endpoints"]) == 2
    assert clusters[variant_cluster("iris", "1")]["health_checks"][0]["grpc_health_check"] == {}
    assert "outlier_detection" in clusters[variant_cluster("iris", "2")]


def test_a_zero_weight_variant_is_left_out_of_the_split(tmp_path):
    _, _, config = rendered(SPECS["all traffic on the new version"], tmp_path)
    routes = config.routes["resources"][0]["virtual_hosts"][0]["routes"]
    split = next(r for r in routes if r["name"] == "iris|split")["route"]["weighted_clusters"]["clusters"]
    assert [(c["name"], c["weight"]) for c in split] == [(variant_cluster("iris", "2"), 100)]


def test_watched_files_are_replaced_by_rename_leaving_no_temporary_files(tmp_path):
    path = tmp_path / "routes" / "routes.yaml"
    write_watched(path, {"version_info": "1"})
    inode = path.stat().st_ino
    write_watched(path, {"version_info": "2"})
    assert yaml.safe_load(path.read_text()) == {"version_info": "2"}
    assert path.stat().st_ino != inode  # a new file moved in, which is what Envoy's watch sees
    assert [p.name for p in path.parent.iterdir()] == ["routes.yaml"]


# -- bad specs ----------------------------------------------------------------------------

def with_iris(**entry) -> dict:
    return {"models": {"iris": entry}}


BAD_SPECS = {
    "weights summing to zero": (
        with_iris(variants=[{"version": "1", "weight": 0}, {"version": "2", "weight": 0}]),
        "models.iris", "positive total"),
    "negative weight": (
        with_iris(variants=[{"version": "1", "weight": -5}]), "models.iris.variants[0].weight", "greater than or equal"),
    "negative shadow fraction": (
        with_iris(variants=[{"version": "1", "weight": 1}], shadows=[{"version": "2", "fraction": -0.1}]),
        "models.iris.shadows[0].fraction", "greater than or equal"),
    "fraction above one": (
        with_iris(variants=[{"version": "1", "weight": 1}], shadows=[{"version": "2", "fraction": 1.5}]),
        "models.iris.shadows[0].fraction", "less than or equal"),
    "duplicate version among variants": (
        with_iris(variants=[{"version": "1", "weight": 1}, {"version": "1", "weight": 2}]),
        "models.iris", "more than once"),
    "version both variant and shadow": (
        with_iris(variants=[{"version": "1", "weight": 1}], shadows=[{"version": "1", "fraction": 0.5}]),
        "models.iris", "more than once"),
    "misspelled field": (
        with_iris(variants=[{"version": "1", "wieght": 1}]), "models.iris.variants[0].wieght", "Extra inputs"),
    "no variants": (with_iris(variants=[]), "models.iris.variants", "at least 1"),
    "fallback that is not a variant": (
        with_iris(variants=[{"version": "1", "weight": 1}], fallback="7"), "models.iris", "fallback"),
    "upper-case routing header": (
        with_iris(variants=[{"version": "1", "weight": 1}], routing_key_header="X-User"),
        "models.iris.routing_key_header", "lower-case"),
    "routing header the mesh owns": (
        with_iris(variants=[{"version": "1", "weight": 1}], routing_key_header="x-meshserve-model"),
        "models.iris.routing_key_header", "set by the mesh"),
    "zero replicas": (
        with_iris(variants=[{"version": "1", "weight": 1, "replicas": 0}]),
        "models.iris.variants[0].replicas", "greater than or equal"),
    "replicas neither a count nor a range": (
        with_iris(variants=[{"version": "1", "weight": 1, "replicas": "many"}]),
        "models.iris.variants[0].replicas", "valid dictionary"),
    "replicas range upside down": (
        with_iris(variants=[{"version": "1", "weight": 1, "replicas": {"min": 3, "max": 2}}]),
        "models.iris.variants[0].replicas", "above max"),
    "replicas range without max": (
        with_iris(variants=[{"version": "1", "weight": 1, "replicas": {"min": 1}}]),
        "models.iris.variants[0].replicas.max", "Field required"),
    "replicas range beyond 64": (
        with_iris(variants=[{"version": "1", "weight": 1, "replicas": {"min": 1, "max": 65}}]),
        "models.iris.variants[0].replicas.max", "less than or equal"),
    "a range that never runs a replica": (
        with_iris(variants=[{"version": "1", "weight": 1, "replicas": {"min": 0, "max": 0}}]),
        "models.iris.variants[0].replicas.max", "greater than or equal"),
    "a limit of zero": (
        with_iris(variants=[{"version": "1", "weight": 1}], limits={"max_in_flight": 0}), "models.iris.limits.max_in_flight", "greater than or equal"),
    "a misspelled limit": (
        with_iris(variants=[{"version": "1", "weight": 1}], limits={"max_inflight": 5}), "models.iris.limits.max_inflight", "Extra inputs"),
    "a cooldown that is negative": (
        with_iris(variants=[{"version": "1", "weight": 1}], autoscaling={"cooldown_s": -1}), "models.iris.autoscaling.cooldown_s", "greater than or equal"),
    "models not a mapping": ({"models": ["iris"]}, "models", "dictionary"),
}


@pytest.mark.parametrize("name", BAD_SPECS)
def test_a_malformed_spec_is_refused_naming_file_field_and_fix(name):
    raw, field, problem = BAD_SPECS[name]
    with pytest.raises(ManifestError) as caught:
        parse_spec(raw, "/srv/models/meshserve.yaml")
    error = caught.value
    assert error.path == "/srv/models/meshserve.yaml"
    assert error.field == field
    assert problem in error.problem
    assert error.fix and "Fix:" in str(error)


def test_a_bad_replicas_field_says_what_to_write_instead():
    with pytest.raises(ManifestError) as caught:
        parse_spec(with_iris(variants=[{"version": "1", "weight": 1, "replicas": {"min": 3, "max": 2}}]), "m.yaml")
    assert "{min: M, max: N}" in caught.value.fix
    assert "\n" not in str(caught.value)


def test_a_plain_replica_count_still_means_that_many_fixed_replicas():
    spec = parse_spec(with_iris(variants=[{"version": "1", "weight": 1, "replicas": 3}]), "m.yaml")
    assert spec.models["iris"].replicas == {"1": 3}
    assert not spec.models["iris"].replica_ranges["1"].scales
    ranged = parse_spec(with_iris(variants=[{"version": "1", "weight": 1, "replicas": {"min": 2, "max": 5}}]), "m.yaml")
    assert ranged.models["iris"].replicas == {"1": 2} and ranged.models["iris"].replica_ranges["1"].scales
    idle = parse_spec(with_iris(variants=[{"version": "1", "weight": 1, "replicas": {"min": 0, "max": 2}}]), "m.yaml")
    assert idle.models["iris"].replicas == {"1": 0} and idle.models["iris"].cold_versions == {"1"}


def test_a_model_named_twice_in_the_yaml_is_refused(tmp_path):
    path = tmp_path / "meshserve.yaml"
    path.write_text("models:\n  iris:\n    variants: [{version: '1', weight: 1}]\n"
                    "  iris:\n    variants: [{version: '2', weight: 1}]\n")
    with pytest.raises(ManifestError, match="duplicate key 'iris'"):
        load_spec(path)


def test_a_spec_naming_an_unknown_version_or_model_is_refused():
    spec = parse_spec(CANARY, "meshserve.yaml")
    with pytest.raises(ManifestError) as caught:
        resolve_spec(spec, {"iris": {"1", "2"}}, "meshserve.yaml")
    assert caught.value.field == "models.iris.shadows" and "unknown version '3'" in caught.value.problem
    assert "1, 2" in caught.value.fix
    with pytest.raises(ManifestError, match="no model package named 'iris'"):
        resolve_spec(spec, {"digits": {"1"}}, "meshserve.yaml")


def test_a_model_without_an_entry_gets_its_only_version_at_full_weight():
    spec = resolve_spec(parse_spec(None, "meshserve.yaml"), {"iris": {"1"}, "digits": {"1", "2", "10"}})
    assert spec.models["iris"].initial_rollout() == Rollout(weights={"1": 100})
    assert spec.models["iris"].replicas == {"1": 1}
    # Several versions, no entry: the newest takes the traffic, the others stay reachable by name.
    assert spec.models["digits"].initial_rollout().weights == {"10": 100, "1": 0, "2": 0}


# -- rollouts -----------------------------------------------------------------------------

@pytest.fixture
def live(tmp_path):
    spec, layout, config = rendered(CANARY, tmp_path)
    config.write(layout)
    return LiveRollouts(spec, layout, state_path=tmp_path / "rollouts.json")


BAD_ROLLOUTS = {
    "unknown version": ({"1": 50, "9": 50}, None, "iris.weights.9", "not deployed"),
    "weights summing to zero": ({"1": 0, "2": 0}, None, "iris.weights", "add up to zero"),
    "negative weight": ({"1": -1, "2": 5}, None, "iris.weights.1", "out of range"),
    "negative fraction": (None, {"3": -0.5}, "iris.shadows.3", "outside 0..1"),
    "shadow that is also primary": ({"1": 50, "2": 50}, {"2": 0.5}, "iris.shadows.2", "cannot also shadow"),
}


@pytest.mark.parametrize("name", BAD_ROLLOUTS)
def test_a_bad_rollout_is_refused_and_changes_nothing(live, name):
    weights, shadows, field, problem = BAD_ROLLOUTS[name]
    before = live.layout.routes_path.read_text()
    with pytest.raises(ManifestError) as caught:
        live.apply("iris", weights, shadows)
    assert caught.value.field == field and problem in caught.value.problem
    assert live.current("iris") == Rollout(weights={"1": 90, "2": 10}, shadows={"3": 0.25})
    assert live.layout.routes_path.read_text() == before


def test_a_rollout_rewrites_only_the_routes_and_survives_a_restart_of_its_owner(live):
    clusters = live.layout.clusters_path.read_text()
    applied = live.apply("iris", {"1": 50, "2": 50}, {"3": 1.0})
    assert applied == Rollout(weights={"1": 50, "2": 50}, shadows={"3": 1.0})
    routes = yaml.safe_load(live.layout.routes_path.read_text())
    assert routes["version_info"] == "2"
    assert live.layout.clusters_path.read_text() == clusters
    validate_config(render(live.layout, live.spec, UpstreamAddresses.sequential(live.spec, "127.0.0.1", 19000),
                           {"iris": applied}).inlined())
    again = LiveRollouts(live.spec, live.layout, state_path=live.state_path)
    assert again.current("iris") == applied and again.version_info == "2"


def test_weights_left_out_of_a_rollout_drop_to_zero_and_shadows_are_kept_unless_given(live):
    assert live.apply("iris", {"2": 100}).weights == {"1": 0, "2": 100}
    assert live.current("iris").shadows == {"3": 0.25}
    assert live.apply("iris", shadows={}).shadows == {}


def test_variants_and_models_loaded_while_running_get_routes_and_no_unpinned_traffic(live):
    live.apply("iris", {"1": 50, "2": 50})
    models = dict(live.spec.models)
    iris = models["iris"]
    models["iris"] = iris.model_copy(update={"variants": [*iris.variants, Variant(version="4", weight=0)]})
    models["digits"] = ModelDeployment(variants=[Variant(version="1", weight=100)])
    version = live.take_in(live.spec.model_copy(update={"models": models}))
    assert version == "3"
    assert live.current("iris") == Rollout(weights={"1": 50, "2": 50, "4": 0}, shadows={"3": 0.25})
    assert live.current("digits").weights == {"1": 100}
    routes = live.layout.routes_path.read_text()
    assert "variant|iris|4" in routes and "variant|digits|1" in routes
    assert LiveRollouts(live.spec, live.layout, state_path=live.state_path).current("iris").weights["4"] == 0


# -- the command line ---------------------------------------------------------------------

def test_meshserve_envoy_render_prints_a_config_envoy_accepts(tmp_path):
    models = write_variant_packages(tmp_path / "models", "iris", ["1", "2", "3"])
    write_spec(models, CANARY)
    result = subprocess.run(meshserve_argv("envoy", "render", str(models / "meshserve.yaml"), "--validate"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert [sorted(d) for d in documents] == [
        ["admin", "dynamic_resources", "node", "static_resources"], ["resources"], ["resources", "version_info"]]
    assert "validate: OK" in result.stderr


def test_meshserve_envoy_render_refuses_a_bad_spec_with_file_field_and_fix(tmp_path):
    models = write_variant_packages(tmp_path / "models", "iris", ["1", "2"])
    write_spec(models, {"models": {"iris": {"variants": [{"version": "1", "weight": 1}, {"version": "4", "weight": 1}]}}})
    result = subprocess.run(meshserve_argv("envoy", "render", str(models)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "meshserve.yaml" in result.stderr and "models.iris.variants" in result.stderr
    assert "unknown version '4'" in result.stderr and "Fix:" in result.stderr
