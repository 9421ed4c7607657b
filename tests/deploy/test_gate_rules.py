"""The gate's pure rules: what counts as a signature change, and the split each role gives."""

from __future__ import annotations

import pytest
from meshserve.spec.deployment_spec import Rollout

from meshserve.core.model_package import Signature
from meshserve.deploy.gate import signature_changes
from meshserve.deploy.roles import RoleError, live_primary, split_for


def signature(inputs: list[dict], outputs: list[dict] | None = None) -> Signature:
    return Signature.model_validate({"inputs": inputs, "outputs": outputs or [
        {"name": "label", "datatype": "INT64", "shape": [-1]}]})


LIVE = signature([{"name": "applicant", "datatype": "FP64", "shape": [-1, 3], "features": ["age", "income", "debt"]},
                  {"name": "region", "datatype": "BYTES", "shape": [-1]}])


def test_the_same_signature_is_no_change():
    assert signature_changes(LIVE, LIVE) == []


def test_each_kind_of_change_is_named():
    new = signature([{"name": "applicant", "datatype": "FP32", "shape": [-1, 2], "features": ["age", "debt"]},
                     {"name": "channel", "datatype": "BYTES", "shape": [-1]}],
                    [{"name": "label", "datatype": "BYTES", "shape": [-1]}])
    assert signature_changes(new, LIVE) == [
        "input 'applicant': datatype FP64 became FP32",
        "input 'applicant': shape [-1, 3] became [-1, 2]",
        "input 'applicant': feature(s) income of the live version are missing",
        "input 'region' of the live version is missing (removed or renamed)",
        "output 'label': datatype INT64 became BYTES",
        "input 'channel' is new: clients of the live version do not send it",
    ]


def test_reordered_features_are_a_change_because_columns_are_positional():
    new = signature([{"name": "applicant", "datatype": "FP64", "shape": [-1, 3], "features": ["income", "age", "debt"]},
                     {"name": "region", "datatype": "BYTES", "shape": [-1]}])
    assert signature_changes(new, LIVE) == ["input 'applicant': features are in another order (income, age, debt)"]


def test_a_canary_takes_its_percent_and_the_others_keep_their_proportions():
    weights, shadows = split_for(Rollout(weights={"1": 3, "2": 1, "3": 0}, shadows={"3": 0.5}), "3", "canary", 20)
    assert weights == {"1": 6000, "2": 2000, "3": 2000} and shadows == {}


def test_a_shadow_keeps_the_weights_and_a_primary_takes_everything():
    current = Rollout(weights={"1": 100, "2": 0}, shadows={})
    assert split_for(current, "2", "shadow", 0) == ({"1": 100, "2": 0}, {"2": 1.0})
    assert split_for(current, "2", "shadow", 0.25) == ({"1": 100, "2": 0}, {"2": 0.25})
    assert split_for(Rollout(weights={"1": 100, "2": 0}, shadows={"2": 1.0}), "2", "primary", 0) == (
        {"1": 0, "2": 100}, {})


@pytest.mark.parametrize("role, amount, message", [
    ("canary", 100, "a canary's percent must be above 0 and below 100"),
    ("canary", 0, "a canary's percent must be above 0 and below 100"),
    ("shadow", 1.5, "a shadow's fraction must be above 0 and at most 1"),
    ("champion", 1, "role: 'champion' is not one of shadow, canary, primary"),
])
def test_a_role_that_cannot_be_given_says_why(role, amount, message):
    with pytest.raises(RoleError, match=message):
        split_for(Rollout(weights={"1": 100, "2": 0}), "2", role, amount)


def test_a_version_taking_traffic_cannot_become_a_shadow_nor_a_canary_of_itself():
    with pytest.raises(RoleError, match="takes primary traffic now"):
        split_for(Rollout(weights={"1": 100, "2": 5}), "2", "shadow", 1)
    with pytest.raises(RoleError, match="no other version takes traffic"):
        split_for(Rollout(weights={"1": 0, "2": 100}), "2", "canary", 10)


def test_the_live_primary_is_the_heaviest_other_version():
    assert live_primary(Rollout(weights={"1": 70, "2": 30, "3": 0}), "3") == "1"
    assert live_primary(Rollout(weights={"3": 100}), "3") is None
