"""How much work Envoy lets through to each part of the mesh before it sheds the rest.

Each variant's cluster gets circuit breakers sized from the deployment: its most replicas
times the working slots of one replica (predict threads, R or Java workers, batch rows) times
MESHSERVE_IN_FLIGHT_PER_SLOT, unless the spec's `limits:` says otherwise. A request beyond
them is refused at once (Envoy's overflow), answered RESOURCE_EXHAUSTED naming the model
(`variant_shed_reply_mapper` at the front; the router says the same for the calls it
forwards): a spike is shed at the door instead of queueing without bound in an adapter, so
the requests let in keep their latency.

Mirrored copies go through a cluster of their own per version (`mirror|MODEL|VERSION`, the
same replicas) with limits of their own (by default four times the version's own and at
least 8192, since a copy may outlive the request it copies; set with `limits.shadow_max_in_flight`): copies beyond them are dropped at Envoy, never queued, so a
slow or swamped shadow can never hold work that primaries, or clients naming the shadow's
version, need. The front cluster to the router is limited too, so the
Python router itself is never buried: Envoy refuses what is beyond it with UNAVAILABLE and a
`retry-after` hint, for a cost of microseconds per refusal.
"""

from __future__ import annotations

from typing import Any

from meshserve.core.mesh_protocol import MODEL_HEADER
from meshserve.spec.deployment_spec import DeploymentSpec, ModelDeployment

from meshserve.core.settings import get_settings

# A variant whose package was not read (a rendering without packages) counts as this many slots.
DEFAULT_SLOTS = 4
# The router never gets fewer than this many requests at once: it is cheap per request, and
# refusing at the front what the mesh would shed anyway costs the client a clearer message.
MIN_ROUTER_IN_FLIGHT = 64
# Retries in flight per cluster: Envoy's default of 3 refuses retries a burst needs.
MAX_RETRIES = 256


def thresholds(max_requests: int, max_pending: int) -> dict[str, Any]:
    return {"thresholds": [{"max_connections": 10_000, "max_pending_requests": max_pending,
                            "max_requests": max_requests, "max_retries": MAX_RETRIES}]}


def variant_in_flight(deployment: ModelDeployment, version: str, slots: int) -> int:
    """Most requests in flight at one variant's cluster (all its replicas together)."""
    replicas = deployment.replica_ranges[version].max
    return deployment.limits.max_in_flight or replicas * slots * get_settings().in_flight_per_slot


def variant_breakers(deployment: ModelDeployment, version: str, slots: int) -> dict[str, Any]:
    in_flight = variant_in_flight(deployment, version, slots)
    return thresholds(in_flight, deployment.limits.max_pending or in_flight)


# Copies in flight to a version, per request in flight its own limit allows: a shadow at
# fraction 1 gets one copy per primary request, and copies the client no longer waits for
# pile up behind the shadow's slower answers; room for a few times the primary's load keeps
# every copy of a load the primary accepts while still bounding what a shadow can hold.
MIRROR_ROOM = 4
# Nor fewer copies than this: a shadow slower than its primary falls behind by a backlog that
# grows with the primary's load (a fraction-1 shadow of 2,000 requests from 8 clients on a busy
# 2-core machine fell more than 1,000 copies behind), and its copies cost only the shadow's own
# adapter (a few kB each, never the primaries' limits), so room for a long backlog keeps it complete.
MIN_MIRROR_IN_FLIGHT = 8192


def mirror_breakers(deployment: ModelDeployment, version: str, slots: int) -> dict[str, Any]:
    """Copies in flight to one version, through its mirror cluster."""
    sized = MIRROR_ROOM * deployment.replica_ranges[version].max * slots * get_settings().in_flight_per_slot
    in_flight = deployment.limits.shadow_max_in_flight or max(sized, MIN_MIRROR_IN_FLIGHT)
    return thresholds(in_flight, in_flight)


def router_in_flight(spec: DeploymentSpec, slots: dict[tuple[str, str], int]) -> int:
    """Most requests the front lets into the router: twice what the models' limits let through."""
    if spec.limits.router_max_in_flight is not None:
        return spec.limits.router_max_in_flight
    through = sum(variant_in_flight(d, version, slots.get((model, version), DEFAULT_SLOTS))
                  for model, d in spec.models.items() for version in d.replicas if version not in d.shadow_versions)
    return max(MIN_ROUTER_IN_FLIGHT, 2 * through)


def shed_reply_mapper() -> dict[str, Any]:
    """The front's answer to a request beyond the router's limit (flag UO: upstream overflow).

    Envoy answers gRPC UNAVAILABLE; the `retry-after` trailer and the message say it is load,
    not an outage, and when to come back.
    """
    retry_after = get_settings().retry_after_s
    return {
        "filter": {"response_flag_filter": {"flags": ["UO"]}},
        "headers_to_add": [{"header": {"key": "retry-after", "value": f"{retry_after:g}"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
        "body": {"inline_string": f"the mesh is at capacity (the router has all the requests it can take); "
                                  f"retry after {retry_after:g} s"},
    }


def variant_shed_reply_mapper() -> dict[str, Any]:
    """The front's answer to an inference beyond its variant's limits (overflow, UO, on a call
    the front routed by its model): RESOURCE_EXHAUSTED naming the model, with when to retry."""
    retry_after = get_settings().retry_after_s
    return {
        "filter": {"and_filter": {"filters": [
            {"response_flag_filter": {"flags": ["UO"]}},
            {"header_filter": {"header": {"name": MODEL_HEADER, "present_match": True}}}]}},
        "headers_to_add": [{"header": {"key": "retry-after", "value": f"{retry_after:g}"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
                           {"header": {"key": "grpc-status", "value": "8"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
        "body_format_override": {"text_format_source": {"inline_string":
            f"model '%REQ({MODEL_HEADER})%' is at capacity: the mesh is serving all the requests it can for it and "
            f"shed this one; retry after {retry_after:g} s (or raise limits.max_in_flight or replicas in "
            "meshserve.yaml)"}},
    }


def oversized_reply_mapper() -> dict[str, Any]:
    """A request larger than the front buffers (HTTP 413): RESOURCE_EXHAUSTED naming the limit."""
    limit = get_settings().max_message_bytes
    return {
        "filter": {"status_code_filter": {"comparison": {"op": "EQ", "value": {
            "default_value": 413, "runtime_key": "meshserve.oversized_status"}}}},
        "headers_to_add": [{"header": {"key": "grpc-status", "value": "8"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
        "body_format_override": {"text_format_source": {"inline_string":
            f"the request is larger than this mesh's limit of {limit} bytes (MESHSERVE_MAX_MESSAGE_BYTES); "
            "send fewer rows per request"}},
    }


# Envoy's flags for a replica that could not answer: no healthy host, connection failure or
# termination, a reset, retries used up.
_REPLICA_GONE = ["UH", "UF", "UC", "UR", "URX", "NC"]


def unavailable_reply_mapper() -> dict[str, Any]:
    """An inference whose replicas could not answer (all down, or the one it reached died with
    it): UNAVAILABLE naming the model and saying what to do, not Envoy's connection jargon."""
    return {
        "filter": {"and_filter": {"filters": [
            {"response_flag_filter": {"flags": _REPLICA_GONE}},
            {"header_filter": {"header": {"name": MODEL_HEADER, "present_match": True}}}]}},
        "body_format_override": {"text_format_source": {"inline_string":
            f"model '%REQ({MODEL_HEADER})%' is unavailable (%RESPONSE_CODE_DETAILS%): its adapter is down or "
            "restarting; retry shortly"}},
    }
