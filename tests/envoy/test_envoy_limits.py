"""Circuit breakers and the front's shed answer, as rendered from the spec (envoy/limits.py)."""

from __future__ import annotations

from pathlib import Path

from meshserve.envoy.layout import EnvoyLayout, UpstreamAddresses, fallback_cluster, mirror_cluster, variant_cluster
from meshserve.envoy.render import render
from meshserve.spec.deployment_spec import parse_spec


def rendered(raw: dict, slots: dict | None = None):
    spec = parse_spec(raw, "meshserve.yaml")
    upstreams = UpstreamAddresses.sequential(spec, "127.0.0.1", 19000)
    upstreams.slots.update(slots or {})
    layout = EnvoyLayout(Path("/run/envoy"), front="127.0.0.1:1", mesh="127.0.0.1:2", admin="127.0.0.1:3")
    return render(layout, spec, upstreams)


def breakers(config, name: str) -> dict:
    clusters = config.clusters["resources"] + config.bootstrap["static_resources"]["clusters"]
    return next(c for c in clusters if c["name"] == name)["circuit_breakers"]["thresholds"][0]


SPEC = {"models": {"iris": {
    "variants": [{"version": "1", "weight": 9, "replicas": {"min": 1, "max": 3}}, {"version": "2", "weight": 1}],
    "shadows": [{"version": "3", "fraction": 1.0, "replicas": 2}],
    "fallback": "2",
}}}


def test_each_variant_is_limited_to_its_most_replicas_times_their_slots_times_the_queue_per_slot():
    # MESHSERVE_IN_FLIGHT_PER_SLOT is 4 by default.
    config = rendered(SPEC, slots={("iris", "1"): 4, ("iris", "2"): 8, ("iris", "3"): 4})
    assert breakers(config, variant_cluster("iris", "1"))["max_requests"] == 3 * 4 * 4
    assert breakers(config, variant_cluster("iris", "2"))["max_requests"] == 1 * 8 * 4
    # Requests through the fallback aggregate count against its breakers: the same limit.
    assert breakers(config, fallback_cluster("iris", "1"))["max_requests"] == 3 * 4 * 4


def test_copies_have_a_cluster_of_their_own_with_limits_of_their_own():
    config = rendered(SPEC, slots={("iris", "3"): 4})
    copies = breakers(config, mirror_cluster("iris", "3"))
    assert copies["max_requests"] == copies["max_pending_requests"] == 8192  # the floor above 4 * 2 * 4 * 4
    busy = rendered(SPEC, slots={("iris", "3"): 512})
    assert breakers(busy, mirror_cluster("iris", "3"))["max_requests"] == 4 * 2 * 512 * 4
    # A client naming the shadow's version meets the variant's own breakers, not the copies'.
    assert breakers(config, variant_cluster("iris", "3"))["max_requests"] == 2 * 4 * 4
    smaller = rendered({"models": {"iris": {**SPEC["models"]["iris"], "limits": {"shadow_max_in_flight": 3}}}})
    assert breakers(smaller, mirror_cluster("iris", "3"))["max_requests"] == 3
    assert breakers(smaller, variant_cluster("iris", "3"))["max_requests"] == 2 * 4 * 4
    split = next(r for r in config.routes["resources"][0]["virtual_hosts"][0]["routes"] if r["name"] == "iris|split")
    assert [m["cluster"] for m in split["route"]["request_mirror_policies"]] == [mirror_cluster("iris", "3")]
    mirror = next(c for c in config.clusters["resources"] if c["name"] == mirror_cluster("iris", "3"))
    assert mirror["load_assignment"]["endpoints"] == next(
        c for c in config.clusters["resources"] if c["name"] == variant_cluster("iris", "3"))["load_assignment"]["endpoints"]


def test_the_spec_limits_win_over_the_sizes_from_the_deployment():
    raw = {"models": {"iris": {**SPEC["models"]["iris"],
                               "limits": {"max_in_flight": 50, "max_pending": 5, "shadow_max_in_flight": 1}}},
           "limits": {"router_max_in_flight": 7}}
    config = rendered(raw)
    primary = breakers(config, variant_cluster("iris", "1"))
    assert (primary["max_requests"], primary["max_pending_requests"]) == (50, 5)
    assert breakers(config, mirror_cluster("iris", "3"))["max_requests"] == 1
    assert breakers(config, "router")["max_requests"] == 7


def test_the_router_gets_twice_what_the_primaries_let_through_and_never_less_than_64():
    small = rendered({"models": {"iris": {"variants": [{"version": "1", "weight": 1}]}}})
    assert breakers(small, "router")["max_requests"] == 64
    big = rendered({"models": {"iris": {"variants": [{"version": "1", "weight": 1}], "limits": {"max_in_flight": 100}},
                               "digits": {"variants": [{"version": "1", "weight": 1}], "limits": {"max_in_flight": 20}}}})
    assert breakers(big, "router")["max_requests"] == 2 * 120


def test_the_front_answers_an_overflow_with_a_retry_hint_and_says_the_mesh_is_at_capacity():
    config = rendered(SPEC)
    front = config.bootstrap["static_resources"]["listeners"][0]
    manager = front["filter_chains"][0]["filters"][0]["typed_config"]
    mapper = next(m for m in manager["local_reply_config"]["mappers"]
                  if m["filter"] == {"response_flag_filter": {"flags": ["UO"]}})
    assert mapper["headers_to_add"][0]["header"] == {"key": "retry-after", "value": "1"}
    assert "at capacity" in mapper["body"]["inline_string"]


def test_every_answer_of_the_mesh_names_the_variant_it_was_routed_to():
    routes = rendered(SPEC).routes["resources"][0]["virtual_hosts"][0]["routes"]
    split = next(r for r in routes if r["name"] == "iris|split")
    headers = {c["name"]: c["response_headers_to_add"][0]["header"] for c in split["route"]["weighted_clusters"]["clusters"]}
    assert headers[fallback_cluster("iris", "1")] == {"key": "x-meshserve-variant", "value": "1 primary"}
    pinned = next(r for r in routes if r["name"] == "iris|pinned|2")
    assert pinned["response_headers_to_add"][0]["header"]["value"] == "2 canary"
