"""The progressive-delivery controller's judgement: a candidate is promoted on evidence, held
when evidence is missing, and rolled back the moment it breaks a bound (errors, latency,
disagreement in the shadow stage, accuracy on outcomes), with the reason an operator reads."""

from __future__ import annotations

import json
import time

import pytest

from meshserve.router.control_plane.progressive import (
    BREACH_MIN_REQUESTS, Decision, RolloutController, decide, measure)
from meshserve.spec.deployment_log import DeploymentLog
from meshserve.spec.deployment_spec import DeploymentSpec, Rollout, RolloutPlan


def plan(**changes) -> RolloutPlan:
    return RolloutPlan(candidate="2", min_requests=100, min_step_s=60, max_step_s=900, **changes)


def answers(version: str, count: int, failed: int = 0, latency_s: float = 0.010) -> list[dict]:
    """Adapter records of COUNT answers by VERSION, the first FAILED of them INTERNAL errors."""
    return [{"version": version, "side": "adapter", "slot": "answer", "latency_s": latency_s,
             "code": "INTERNAL" if i < failed else "OK"} for i in range(count)]


def step_figures(candidate: list[dict], primary: list[dict]) -> dict:
    return measure(candidate + primary, "2", "1", [])


def label_pair(primary_label: int, shadow_label: int) -> tuple[dict, dict]:
    def record(version: str, label: int) -> dict:
        return {"version": version, "code": "OK",
                "outputs": {"label": {"datatype": "INT64", "shape": [1], "values": [label]}}}
    return record("1", primary_label), record("2", shadow_label)


def test_a_candidate_that_kept_every_bound_on_enough_requests_and_time_is_promoted():
    figures = step_figures(answers("2", 150), answers("1", 3000))
    decision = decide(plan(), "step", figures, elapsed=61, primary="1")
    assert decision.action == "advance"
    assert decision.why == "every bound kept on 150 requests over 61 s"


def test_enough_requests_but_too_little_time_keeps_measuring():
    figures = step_figures(answers("2", 150), answers("1", 3000))
    assert decide(plan(), "step", figures, elapsed=30, primary="1").action == "wait"


def test_too_few_requests_past_max_step_s_holds_and_says_how_many_it_has():
    figures = step_figures(answers("2", 40), answers("1", 800))
    assert decide(plan(), "step", figures, elapsed=600, primary="1").action == "wait"
    decision = decide(plan(), "step", figures, elapsed=901, primary="1")
    assert decision.action == "hold"
    assert decision.why.startswith("holding: 40 of the 100 requests this step needs after 901 s")
    assert "not promoting without evidence" in decision.why


def test_a_candidate_failing_one_request_in_five_is_rolled_back_before_min_requests():
    figures = step_figures(answers("2", 30, failed=6), answers("1", 500))
    decision = decide(plan(), "step", figures, elapsed=5, primary="1")
    assert decision.action == "roll_back"
    assert decision.why == "error rate 0.200 of version 2 above 0.01 (6 of 30 requests failed)"


def test_errors_on_fewer_requests_than_a_breach_needs_are_not_judged_yet():
    figures = step_figures(answers("2", BREACH_MIN_REQUESTS - 1, failed=5), answers("1", 500))
    assert decide(plan(), "step", figures, elapsed=5, primary="1").action == "wait"


def test_a_candidate_three_times_slower_than_the_primary_at_p99_is_rolled_back():
    figures = step_figures(answers("2", 50, latency_s=0.030), answers("1", 50, latency_s=0.010))
    decision = decide(plan(), "step", figures, elapsed=5, primary="1")
    assert decision.action == "roll_back"
    assert "p99 latency 30.0 ms of version 2 is 3.00x the primary's 10.0 ms, above 2.0x" == decision.why


def test_latency_is_not_compared_while_the_primary_has_too_few_requests_of_its_own():
    figures = step_figures(answers("2", 50, latency_s=0.030), answers("1", 5, latency_s=0.010))
    assert decide(plan(), "step", figures, elapsed=5, primary="1").action == "wait"


def test_a_bound_set_to_none_is_not_checked():
    figures = step_figures(answers("2", 150, failed=75), answers("1", 500))
    lenient = plan(bounds={"max_error_rate": None})
    assert decide(lenient, "step", figures, elapsed=61, primary="1").action == "advance"


def test_a_shadow_that_disagrees_on_one_answer_in_ten_is_rolled_back():
    pairs = [label_pair(1, 0 if i % 10 == 0 else 1) for i in range(120)]
    figures = measure([], "2", "1", pairs)
    assert figures["pairs"] == 120 and figures["disagreement"] == pytest.approx(0.1)
    decision = decide(plan(shadow_stage=True), "shadow", figures, elapsed=5, primary="1")
    assert decision.action == "roll_back"
    assert decision.why == "disagreement with version 1 0.100 above 0.05 on 120 requests in the shadow stage"


def test_a_shadow_that_agrees_goes_on_to_live_traffic_once_it_has_enough_pairs_and_time():
    figures = measure([], "2", "1", [label_pair(1, 1) for _ in range(120)])
    assert decide(plan(shadow_stage=True), "shadow", figures, elapsed=61, primary="1").action == "advance"
    few = measure([], "2", "1", [label_pair(1, 1) for _ in range(20)])
    assert decide(plan(shadow_stage=True), "shadow", few, elapsed=61, primary="1").action == "wait"


def test_a_drift_alert_naming_the_candidate_holds_it_when_the_plan_says_so():
    figures = step_figures(answers("2", 150), answers("1", 500))
    asked = []

    def alerted() -> bool:
        asked.append(True)
        return True

    watched = plan(bounds={"no_drift_alert": True})
    assert decide(watched, "step", figures, elapsed=61, primary="1", drift_alerted=alerted) == \
        Decision("hold", "held: a drift alert names version 2")
    assert decide(plan(), "step", figures, elapsed=61, primary="1", drift_alerted=alerted).action == "advance"
    early = decide(watched, "step", figures, elapsed=10, primary="1", drift_alerted=alerted)
    assert early.action == "wait" and len(asked) == 1, "drift is asked about only when the step would advance"


ACCURACY = {"max_accuracy_drop": 0.02, "min_outcomes": 50}


def test_a_candidate_whose_accuracy_trails_by_more_than_the_bound_is_rolled_back():
    figures = step_figures(answers("2", 150), answers("1", 500)) | {
        "candidate_accuracy": 0.90, "candidate_outcomes": 80, "primary_accuracy": 0.95, "primary_outcomes": 400,
        "accuracy_drop": 0.05}
    decision = decide(plan(bounds=ACCURACY), "step", figures, elapsed=61, primary="1")
    assert decision.action == "roll_back"
    assert decision.why == ("accuracy 0.9000 of version 2 on 80 outcomes trails version 1's 0.9500 "
                            "by more than 0.02")


def test_without_enough_outcomes_a_step_bounded_by_accuracy_holds_for_them():
    figures = step_figures(answers("2", 150), answers("1", 500)) | {
        "candidate_accuracy": 0.5, "candidate_outcomes": 10, "primary_accuracy": 0.95, "primary_outcomes": 400,
        "accuracy_drop": 0.45}
    decision = decide(plan(bounds=ACCURACY), "step", figures, elapsed=61, primary="1")
    assert decision.action == "hold"
    assert decision.why == ("held: waiting for outcomes (10 of version 2, 400 of version 1; each needs 50) "
                            "before judging accuracy")
    kept = figures | {"candidate_accuracy": 0.94, "candidate_outcomes": 60, "accuracy_drop": 0.01}
    assert decide(plan(bounds=ACCURACY), "step", kept, elapsed=61, primary="1").action == "advance"


# ---- the controller acting on its judgement -------------------------------------------------


class RecordsSoFar:
    """The records store as the controller reads it: the records since a stage began."""

    def __init__(self):
        self.records: list[dict] = []

    def query(self, model: str, since: float = 0.0):
        return [r for r in self.records if r["time"] >= since]

    def shadow_pairs(self, model: str, since: float = 0.0):
        return []


class Envoy:
    """Where the controller's weights go; remembers the live split as Envoy would serve it."""

    def __init__(self, weights: dict[str, int]):
        self.live = Rollout(weights=weights)
        self.applied: list[dict[str, int]] = []

    def current(self, model: str) -> Rollout:
        return self.live

    def apply(self, model: str, weights: dict[str, int], shadows: dict[str, float]) -> Rollout:
        self.live = Rollout(weights=weights, shadows=shadows)
        self.applied.append(dict(weights))
        return self.live


def controller_for(tmp_path, store: RecordsSoFar, envoy: Envoy) -> RolloutController:
    spec = DeploymentSpec.model_validate({
        "records": {"enabled": True},
        "models": {"churn": {"variants": [{"version": "1", "weight": 100}, {"version": "2", "weight": 0}],
                             "rollout_plan": {"candidate": "2", "steps": [10, 100], "min_requests": 100,
                                              "min_step_s": 0}}}})
    return RolloutController(spec, envoy, lambda: store, tmp_path / "progressive.json",
                             DeploymentLog(tmp_path / "deployments.log"))


def stamped(records: list[dict]) -> list[dict]:
    return [r | {"time": time.time() + 1} for r in records]


def test_a_plan_is_promoted_step_by_step_then_a_failing_step_rolls_back_to_where_it_started(tmp_path):
    store, envoy = RecordsSoFar(), Envoy({"1": 100, "2": 0})
    controller = controller_for(tmp_path, store, envoy)
    controller.start()
    assert envoy.live.weights == {"1": 90, "2": 10}

    controller.evaluate("churn")
    assert controller.states["churn"].stage == "step" and envoy.applied == [{"1": 90, "2": 10}], "no records: waits"

    store.records = stamped(answers("2", 30, failed=10) + answers("1", 300))
    controller.evaluate("churn")
    state = controller.states["churn"]
    assert state.stage == "rolled_back" and envoy.live.weights == {"1": 100, "2": 0}
    logged = DeploymentLog(tmp_path / "deployments.log").entries("churn")
    assert logged[-1]["what"] == "rolled back: version 2 gets no traffic"
    assert logged[-1]["why"].startswith("error rate 0.333 of version 2") and logged[-1]["by"] == "rollout controller"

    restarted = controller_for(tmp_path, store, envoy)  # a restarted router reads the saved state
    assert restarted.states["churn"].stage == "rolled_back"
    restarted.evaluate("churn")
    assert len(envoy.applied) == 2, "a finished plan is not judged again"
    assert json.loads((tmp_path / "progressive.json").read_text())["churn"]["stage"] == "rolled_back"


def test_a_healthy_candidate_reaches_every_request_and_a_paused_plan_waits(tmp_path):
    store, envoy = RecordsSoFar(), Envoy({"1": 100, "2": 0})
    controller = controller_for(tmp_path, store, envoy)
    controller.start()
    controller.act("churn", "pause")
    store.records = stamped(answers("2", 150) + answers("1", 1000))
    controller.evaluate("churn")
    assert envoy.live.weights == {"1": 90, "2": 10}, "paused: judged by no one"
    controller.act("churn", "resume")
    store.records = stamped(answers("2", 150) + answers("1", 1000))
    controller.evaluate("churn")
    assert envoy.live.weights == {"1": 0, "2": 100} and controller.states["churn"].stage == "done"
    assert controller.states["churn"].history[-1]["why"].startswith("every bound kept on 150 requests")
