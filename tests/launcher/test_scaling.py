"""The scaling decision alone: observed load and policy in, replica count out."""

from __future__ import annotations

from meshserve.launcher.scaling import ScalingPolicy, ScalingState, decide

POLICY = ScalingPolicy(minimum=1, maximum=4, target_in_flight=4, scale_up_after_s=2, cooldown_s=10)


def run(samples: list[tuple[float, float]], state: ScalingState | None = None) -> list[int]:
    """Replica counts after each (time, in flight) sample."""
    state = state or ScalingState(replicas=1)
    counts = []
    for now, in_flight in samples:
        state = decide(POLICY, state, in_flight, now)
        counts.append(state.replicas)
    return counts


def test_a_load_above_the_target_adds_replicas_only_once_it_has_lasted():
    assert run([(0, 9), (1, 9), (2, 9)]) == [1, 1, 3]


def test_a_brief_burst_adds_nothing():
    assert run([(0, 20), (1, 20), (1.5, 2), (2.5, 20), (3, 20)]) == [1, 1, 1, 1, 1]


def test_growth_jumps_to_what_the_load_needs_but_never_beyond_max():
    assert run([(0, 100), (2, 100)]) == [1, 4]


def test_growth_is_at_least_one_replica_when_the_load_is_just_above_the_target():
    assert run([(0, 4.5), (2, 4.5)]) == [1, 2]


def test_an_idle_variant_shrinks_one_replica_per_cooldown_down_to_min():
    state = ScalingState(replicas=3)
    samples = [(t, 0) for t in range(40)]
    counts = run(samples, state)
    assert counts[9] == 3 and counts[10] == 2  # after 10 s of idling
    assert counts[19] == 2 and counts[20] == 1  # the next one a cooldown later
    assert counts[-1] == 1  # never below min


def test_no_shrink_soon_after_growing():
    state = ScalingState(replicas=1)
    counts = run([(0, 9), (2, 9)] + [(t, 0) for t in range(3, 14)], state)
    assert counts[1] == 3
    # Idle from t=3, but the last change was at t=2: the cooldown counts from there and from the idle start.
    assert counts[-1] == 2 and counts.index(2) == len(counts) - 1


def test_a_load_that_one_replica_fewer_could_not_carry_keeps_the_replicas():
    # Two replicas at 5 in flight: one replica would be above the target of 4.
    assert run([(t, 5) for t in range(30)], ScalingState(replicas=2)) == [2] * 30


def test_a_fixed_variant_never_changes():
    fixed = ScalingPolicy(minimum=2, maximum=2, target_in_flight=4, scale_up_after_s=0, cooldown_s=0)
    state = ScalingState(replicas=2)
    for now, load in [(0, 100), (1, 0), (2, 100), (3, 0)]:
        state = decide(fixed, state, load, now)
        assert state.replicas == 2


def test_a_variant_at_zero_wakes_at_once_on_a_waiting_request_and_goes_back_to_zero_when_idle():
    policy = ScalingPolicy(minimum=0, maximum=3, target_in_flight=4, scale_up_after_s=5, cooldown_s=10)
    state = ScalingState(replicas=0)
    state = decide(policy, state, 0, now=0)
    assert state.replicas == 0  # idle at zero stays there
    state = decide(policy, state, 1, now=1)
    assert state.replicas == 1  # no scale_up_after_s wait for a cold start
    for now in range(2, 12):
        state = decide(policy, state, 0, now)
    assert state.replicas == 1
    state = decide(policy, state, 0, now=12)
    assert state.replicas == 0
