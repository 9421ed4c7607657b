"""When to add or remove a replica of a variant: a pure function of its observed load and policy.

The load is the number of requests in flight at the variant (Envoy's `upstream_rq_active` for
its cluster, sampled every MESHSERVE_AUTOSCALE_INTERVAL_S). The scaler aims at
`target_in_flight` requests per replica:

* above the target for `scale_up_after_s`: grow at once to as many replicas as the load needs
  at the target (a spike needs capacity now, not one replica a minute), up to `max`;
* so low that one replica fewer would still be at or under the target, for `cooldown_s`, and
  at least `cooldown_s` since the last change: one replica fewer, down to `min`. Shrinking
  one at a time, slowly, keeps a dip between two bursts from taking the capacity away;
* at zero replicas (`min: 0`), any request waiting for one starts a replica at once.

`autoscaler.py` acts on the decisions; this module only decides, so it can be tested alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ScalingPolicy:
    minimum: int
    maximum: int
    target_in_flight: float  # per replica
    scale_up_after_s: float
    cooldown_s: float


@dataclass(frozen=True)
class ScalingState:
    """What the scaler remembers about one variant between two samples."""

    replicas: int
    last_change: float = -math.inf  # when the replica count last changed
    high_since: float | None = None  # since when the load has been above the target
    low_since: float | None = None  # since when one replica fewer would have been enough


def decide(policy: ScalingPolicy, state: ScalingState, in_flight: float, now: float) -> ScalingState:
    """The state after observing IN_FLIGHT requests at time NOW; its `replicas` is the count to run."""
    replicas = state.replicas
    if replicas == 0 and in_flight > 0:
        # A request is waiting for a cold start: no reason to let it wait longer. One replica;
        # if the load needs more, the next samples say so.
        return ScalingState(replicas=1, last_change=now)
    if in_flight > policy.target_in_flight * replicas:
        state = replace(state, low_since=None, high_since=state.high_since if state.high_since is not None else now)
        if replicas < policy.maximum and now - state.high_since >= policy.scale_up_after_s:
            wanted = min(policy.maximum, max(replicas + 1, math.ceil(in_flight / policy.target_in_flight)))
            return ScalingState(replicas=wanted, last_change=now)
        return state
    if replicas > policy.minimum and in_flight <= policy.target_in_flight * (replicas - 1):
        state = replace(state, high_since=None, low_since=state.low_since if state.low_since is not None else now)
        if now - state.low_since >= policy.cooldown_s and now - state.last_change >= policy.cooldown_s:
            return ScalingState(replicas=replicas - 1, last_change=now, low_since=now)
        return state
    return replace(state, high_since=None, low_since=None)
