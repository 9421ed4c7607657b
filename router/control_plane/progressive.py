"""Progressive delivery: a controller that moves a candidate version through its rollout plan.

For each model with a `rollout_plan`, the candidate first optionally shadows the primary (all
requests mirrored; judged on disagreement, never on live traffic), then takes the plan's
steps of primary traffic (5, 25, 50, 100 percent by default). Each step is judged on the
records of the requests it served since the step began:

- breached (error rate, p99 against the primary's, disagreement, a drift alert naming it):
  roll back at once to the weights the plan started from, and stop;
- enough requests and time, every bound kept: go to the next step (or finish at 100%);
- not enough requests by `max_step_s`: hold at this step, and say so, rather than promote blind.

Operators act by hand too (promote, pause, resume, rollback). Every change goes through the same
live rollout path as `meshserve rollout` (no request dropped) and into the deployment log with
its reason. State is saved in the run folder, so a restarted router continues where it was.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from meshserve.spec.deployment_log import DeploymentLog
from meshserve.spec.deployment_spec import ModelDeployment, RolloutPlan

log = logging.getLogger("meshserve.rollout")

FAILURE_CODES = {"INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "UNKNOWN", "DATA_LOSS"}
EVALUATE_EVERY_S = 1.0
# A breach is judged on fewer requests than a promotion: a candidate failing one in five
# shows it well before the step's min_requests.
BREACH_MIN_REQUESTS = 20


@dataclass
class PlanState:
    stage: str  # shadow | step | done | rolled_back
    step: int = -1  # index into the plan's steps (-1 in the shadow stage)
    stage_started_at: float = field(default_factory=time.time)
    plan_started_at: float = field(default_factory=time.time)
    paused: bool = False
    holding: str = ""  # why the step waits (not enough traffic), if it does
    initial_weights: dict[str, int] = field(default_factory=dict)
    initial_shadows: dict[str, float] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def _p99(latencies: list[float]) -> float | None:
    return float(np.quantile(latencies, 0.99)) if latencies else None


def measure(records: list[dict], candidate: str, primary: str, pairs: list[tuple[dict, dict]]) -> dict[str, Any]:
    """The figures the bounds are checked against, from the records since the stage began."""
    mine = [r for r in records if r["version"] == candidate and r["side"] == "adapter" and r["slot"] == "answer"]
    theirs = [r for r in records if r["version"] == primary and r["side"] == "adapter" and r["slot"] == "answer"]
    failed = sum(r["code"] in FAILURE_CODES for r in mine)
    figures: dict[str, Any] = {
        "requests": len(mine), "primary_requests": len(theirs), "failures": failed,
        "error_rate": failed / len(mine) if mine else None,
        "p99_ms": _p99([r["latency_s"] * 1000 for r in mine if r["code"] == "OK"]),
        "primary_p99_ms": _p99([r["latency_s"] * 1000 for r in theirs if r["code"] == "OK"]),
    }
    if figures["p99_ms"] is not None and figures["primary_p99_ms"]:
        figures["p99_ratio"] = figures["p99_ms"] / figures["primary_p99_ms"]
    agree = total = 0
    for p, s in pairs:
        if s["version"] != candidate or p["code"] != "OK" or s["code"] != "OK":
            continue
        for name, tensor in (p.get("outputs") or {}).items():
            other = (s.get("outputs") or {}).get(name)
            if other is None or "values" not in tensor or "values" not in other:
                continue
            if tensor.get("datatype") in ("BYTES", "BOOL") or tensor.get("datatype", "").startswith(("INT", "UINT")):
                a, b = tensor["values"], other["values"]
                a, b = (a if isinstance(a, list) else [a]), (b if isinstance(b, list) else [b])
                total += len(a)
                agree += sum(x == y for x, y in zip(a, b))
                break  # the first class output speaks for the model
    figures["pairs"] = total
    figures["disagreement"] = (total - agree) / total if total else None
    return figures


@dataclass(frozen=True)
class Decision:
    """What a stage's figures call for, and the reason the deployment log and the status give."""

    action: str  # roll_back | advance | hold (say why it waits) | wait (keep measuring)
    why: str = ""


def decide(plan: RolloutPlan, stage: str, figures: dict[str, Any], elapsed: float, primary: str,
           drift_alerted: Callable[[], bool] = lambda: False) -> Decision:
    """The controller's judgement of a stage (shadow or step) from its FIGURES (`measure`, plus
    `_accuracy`'s when the plan bounds accuracy) after ELAPSED seconds: a breached bound rolls
    back at once; enough requests and time with every bound kept advance, unless outcomes are
    still missing or a drift alert (DRIFT_ALERTED, asked only then) names the candidate; too few
    requests past max_step_s hold and say so. No I/O: the caller acts on the answer."""
    bounds = plan.bounds
    if stage == "shadow":
        count, enough = figures["pairs"], figures["pairs"] >= plan.min_requests
        disagreement = figures["disagreement"]
        if enough and bounds.max_disagreement is not None and disagreement > bounds.max_disagreement:
            return Decision("roll_back", f"disagreement with version {primary} {disagreement:.3f} above "
                                         f"{bounds.max_disagreement} on {count} requests in the shadow stage")
    else:
        count, enough = figures["requests"], figures["requests"] >= plan.min_requests
        breach = breach_of(figures, bounds, plan.candidate)
        if breach:
            return Decision("roll_back", breach)
    if bounds.max_accuracy_drop is not None and stage == "step":
        judged = _accuracy_judgement(plan, figures, primary, ready=enough and elapsed >= plan.min_step_s)
        if judged is not None:
            return judged
    if enough and elapsed >= plan.min_step_s:
        if bounds.no_drift_alert and drift_alerted():
            return Decision("hold", f"held: a drift alert names version {plan.candidate}")
        return Decision("advance", f"every bound kept on {count} requests over {elapsed:.0f} s")
    if not enough and elapsed > plan.max_step_s:
        return Decision("hold", f"holding: {count} of the {plan.min_requests} requests this step needs after "
                                f"{elapsed:.0f} s (max_step_s {plan.max_step_s:g}); not promoting without evidence")
    return Decision("wait")


def _accuracy_judgement(plan: RolloutPlan, figures: dict[str, Any], primary: str, ready: bool) -> Decision | None:
    """A step bounded by accuracy: roll back when the candidate trails by more than the bound on
    enough outcomes of both versions; when the step is otherwise READY to advance but the
    outcomes are too few, hold for them. None: accuracy does not decide."""
    bounds = plan.bounds
    judged = figures.get("candidate_outcomes", 0) >= bounds.min_outcomes and \
        figures.get("primary_outcomes", 0) >= bounds.min_outcomes
    if judged and figures["accuracy_drop"] > bounds.max_accuracy_drop:
        return Decision("roll_back", f"accuracy {figures['candidate_accuracy']:.4f} of version {plan.candidate} on "
                                     f"{figures['candidate_outcomes']} outcomes trails version {primary}'s "
                                     f"{figures['primary_accuracy']:.4f} by more than {bounds.max_accuracy_drop}")
    if not judged and ready:
        return Decision("hold", f"held: waiting for outcomes ({figures.get('candidate_outcomes', 0)} of version "
                                f"{plan.candidate}, {figures.get('primary_outcomes', 0)} of version {primary}; "
                                f"each needs {bounds.min_outcomes}) before judging accuracy")
    return None


def breach_of(figures: dict[str, Any], bounds, candidate: str) -> str:
    """Why the candidate breaks an error-rate or p99 bound, judged on BREACH_MIN_REQUESTS; "" when it does not."""
    if figures["requests"] < BREACH_MIN_REQUESTS:
        return ""
    rate = figures["error_rate"]
    if bounds.max_error_rate is not None and rate is not None and rate > bounds.max_error_rate:
        return (f"error rate {rate:.3f} of version {candidate} above {bounds.max_error_rate} "
                f"({figures['failures']} of {figures['requests']} requests failed)")
    ratio = figures.get("p99_ratio")
    if bounds.max_p99_ratio is not None and ratio is not None and figures["primary_requests"] >= \
            BREACH_MIN_REQUESTS and ratio > bounds.max_p99_ratio:
        return (f"p99 latency {figures['p99_ms']:.1f} ms of version {candidate} is {ratio:.2f}x the primary's "
                f"{figures['primary_p99_ms']:.1f} ms, above {bounds.max_p99_ratio}x")
    return ""


class RolloutController:
    """Runs inside the router, beside the control service, for every model with a plan."""

    def __init__(self, spec, rollouts, store_opener, state_path: Path, deployment_log: DeploymentLog,
                 drift_alerts=None):
        self.spec = spec
        # current(model) -> Rollout, apply(model, weights, shadows) blocking until Envoy serves it
        # (envoy/routing.py's LiveRouting)
        self.rollouts = rollouts
        self._open_store = store_opener
        self._store = None
        self.state_path = state_path
        self.log = deployment_log
        self._drift_alerts = drift_alerts  # (model, version) -> list of alert texts, when drift is monitored
        self.plans: dict[str, RolloutPlan] = {m: d.rollout_plan for m, d in spec.models.items() if d.rollout_plan}
        self.states: dict[str, PlanState] = self._load()
        self._lock = threading.Lock()  # judging runs on a worker thread; operators act from the server's

    # ---- state ------------------------------------------------------------------------------

    def _load(self) -> dict[str, PlanState]:
        if self.state_path.exists():
            saved = json.loads(self.state_path.read_text())
            return {m: PlanState(**s) for m, s in saved.items() if m in self.plans}
        return {}

    def _save(self) -> None:
        temporary = self.state_path.with_name(f".{self.state_path.name}.tmp")
        temporary.write_text(json.dumps({m: asdict(s) for m, s in self.states.items()}, indent=2))
        os.replace(temporary, self.state_path)

    def _deployment(self, model: str) -> ModelDeployment:
        return self.spec.models[model]

    # ---- acting -----------------------------------------------------------------------------

    def _set(self, model: str, weights: dict[str, int], shadows: dict[str, float], what: str, why: str, by: str) -> None:
        self.rollouts.apply(model, weights, shadows)
        state = self.states[model]
        entry = self.log.change(model, what, why, by, weights=weights, shadows=shadows)
        state.history.append({k: entry[k] for k in ("time", "what", "why", "by")})
        log.warning("rollout of %s: %s (%s)", model, what, why)

    def _weights_at(self, model: str, step: int) -> dict[str, int]:
        plan, primary = self.plans[model], self._deployment(model).plan_primary()
        percent = plan.steps[step]
        weights = {version: 0 for version in self.states[model].initial_weights}
        weights[primary] = 100 - percent
        weights[plan.candidate] = percent
        return weights

    def start(self) -> None:
        """Put every plan that has not started yet at its first stage."""
        for model, plan in self.plans.items():
            if model in self.states:
                continue
            current = self.rollouts.current(model)
            state = PlanState(stage="shadow" if plan.shadow_stage else "step", step=-1 if plan.shadow_stage else 0,
                              initial_weights=dict(current.weights), initial_shadows=dict(current.shadows))
            self.states[model] = state
            if plan.shadow_stage:
                shadows = dict(current.shadows) | {plan.candidate: 1.0}
                self._set(model, dict(current.weights), shadows, f"shadow stage: version {plan.candidate} mirrors "
                          "every request", "the rollout plan starts", "rollout controller")
            else:
                self._set(model, self._weights_at(model, 0), dict(current.shadows),
                          f"step 1: version {plan.candidate} gets {plan.steps[0]}%", "the rollout plan starts",
                          "rollout controller")
        self._save()

    def _advance(self, model: str, why: str, by: str) -> None:
        plan, state = self.plans[model], self.states[model]
        shadows = {v: f for v, f in state.initial_shadows.items() if v != plan.candidate}
        next_step = state.step + 1
        if next_step >= len(plan.steps):
            state.stage = "done"
            self._save()
            return
        self._set(model, self._weights_at(model, next_step), shadows,
                  f"step {next_step + 1}: version {plan.candidate} gets {plan.steps[next_step]}%", why, by)
        state.stage, state.step = "step", next_step
        if plan.steps[next_step] == 100:
            state.stage = "done"
        state.stage_started_at, state.holding = time.time(), ""
        self._save()

    def _roll_back(self, model: str, why: str, by: str) -> None:
        plan, state = self.plans[model], self.states[model]
        shadows = {v: f for v, f in state.initial_shadows.items() if v != plan.candidate}
        self._set(model, dict(state.initial_weights), shadows,
                  f"rolled back: version {plan.candidate} gets no traffic", why, by)
        state.stage, state.holding = "rolled_back", ""
        self._save()

    def act(self, model: str, action: str, by: str = "operator") -> PlanState:
        """promote | pause | resume | rollback, by hand."""
        if model not in self.plans:
            raise KeyError(model)
        with self._lock:
            return self._act(model, action, by)

    def _act(self, model: str, action: str, by: str) -> PlanState:
        state = self.states[model]
        if action == "pause":
            state.paused = True
            self.log.change(model, "paused", "asked by hand", by)
        elif action == "resume":
            state.paused = False
            state.stage_started_at = time.time()
            self.log.change(model, "resumed", "asked by hand", by)
        elif action == "rollback":
            if state.stage != "rolled_back":
                self._roll_back(model, "asked by hand", by)
        elif action == "promote":
            if state.stage in ("shadow", "step"):
                self._advance(model, "promoted by hand", by)
        else:
            raise ValueError(f"unknown action '{action}'; use promote, pause, resume or rollback")
        self._save()
        return state

    # ---- judging ----------------------------------------------------------------------------

    def evaluate(self, model: str) -> None:
        with self._lock:
            self._evaluate(model)

    def _evaluate(self, model: str) -> None:
        plan, state = self.plans[model], self.states[model]
        if state.paused or state.stage in ("done", "rolled_back"):
            return
        if self._store is None:
            self._store = self._open_store()
        primary = self._deployment(model).plan_primary()
        since = state.stage_started_at
        records = list(self._store.query(model, since=since))
        pairs = list(self._store.shadow_pairs(model, since=since)) if state.stage == "shadow" else []
        figures = measure(records, plan.candidate, primary, pairs)
        if plan.bounds.max_accuracy_drop is not None:
            figures.update(self._accuracy(model, plan.candidate, primary, state.plan_started_at))
        state.measurements = figures
        drift_alerted = lambda: self._drift_alerts is not None and bool(self._drift_alerts(model, plan.candidate))
        decision = decide(plan, state.stage, figures, time.time() - since, primary, drift_alerted)
        if decision.action == "roll_back":
            self._roll_back(model, decision.why, "rollout controller")
        elif decision.action == "advance":
            self._advance(model, decision.why, "rollout controller")
        else:
            if decision.action == "hold" and decision.why.split(" after")[0] != state.holding.split(" after")[0]:
                log.warning("rollout of %s: %s", model, decision.why)
            if decision.action == "hold":
                state.holding = decision.why
            self._save()

    def _accuracy(self, model: str, candidate: str, primary: str, since: float) -> dict[str, Any]:
        """Each version's accuracy on the outcomes reported for its requests since the plan began."""
        from meshserve.sidecars.records.api import quality

        report = quality(self._store.joined(model, since=since))
        figures: dict[str, Any] = {}
        for group in report["groups"]:
            who = "candidate" if group["version"] == candidate and group["role"] != "shadow" else \
                "primary" if group["version"] == primary and group["role"] == "primary" else None
            classes = [f for f in group["outputs"].values() if "accuracy" in f]
            if who and classes:
                figures[f"{who}_accuracy"], figures[f"{who}_outcomes"] = classes[0]["accuracy"], classes[0]["n"]
        if "candidate_accuracy" in figures and "primary_accuracy" in figures:
            figures["accuracy_drop"] = figures["primary_accuracy"] - figures["candidate_accuracy"]
        return figures

    async def run(self) -> None:
        while True:
            for model in list(self.plans):
                try:
                    await asyncio.to_thread(self.evaluate, model)
                except Exception as exc:  # the store down a moment: judge again next time
                    log.error("rollout of %s: cannot judge now (%s: %s)", model, type(exc).__name__, exc)
            await asyncio.sleep(EVALUATE_EVERY_S)

    def status(self, model: str) -> dict[str, Any]:
        plan, state = self.plans[model], self.states.get(model)
        return {"model": model, "plan": plan.model_dump(), "primary": self._deployment(model).plan_primary(),
                "state": asdict(state) if state else None,
                "weights": dict(self.rollouts.current(model).weights),
                "shadows": dict(self.rollouts.current(model).shadows)}
