"""Quality figures from recorded predictions and their outcomes, without a running mesh."""

import pytest

from meshserve.sidecars.records.quality import quality

SPECIES = ["setosa", "versicolor", "virginica"]


def record(request: int, species: str, probabilities: list[float], features: list[str] | None) -> dict:
    column = {"datatype": "FP64", "shape": [1, len(probabilities)], "values": [probabilities]}
    if features is not None:
        column["features"] = features
    return {"version": "1", "role": None, "time": 100.0 + request,
            "outputs": {"species": {"datatype": "BYTES", "shape": [1], "values": [species]},
                        "probabilities": column}}


def outcome(request: int, species: str) -> dict:
    return {"time": 160.0 + request, "values": {"species": species}}


def scored(rows: list[tuple[str, str, list[float]]], features: list[str] | None = SPECIES) -> dict:
    joined = [(record(i, predicted, p, features), outcome(i, truth)) for i, (truth, predicted, p) in enumerate(rows)]
    return quality(joined)["groups"][0]["outputs"]["species"]


def test_an_r_classifier_with_text_labels_gets_auc_and_brier_from_its_named_probability_columns():
    figures = scored([("setosa", "setosa", [0.9, 0.05, 0.05]),
                      ("versicolor", "versicolor", [0.1, 0.7, 0.2]),
                      ("virginica", "virginica", [0.0, 0.3, 0.7]),
                      ("virginica", "versicolor", [0.0, 0.85, 0.15])])
    assert figures["accuracy"] == 0.75
    # one-vs-rest, averaged: setosa ranks every pair right, versicolor 2 of 3, virginica 3 of 4
    assert figures["auc"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # the chosen class's probability against whether it was right: (.1² + .3² + .3² + .85²) / 4
    assert figures["brier"] == pytest.approx((0.01 + 0.09 + 0.09 + 0.7225) / 4)
    assert sum(b["n"] for b in figures["reliability"]) == 4


def test_a_binary_text_label_scores_the_second_named_column_as_the_positive_class():
    figures = scored([("yes", "yes", [0.2, 0.8]), ("no", "no", [0.7, 0.3]), ("yes", "no", [0.6, 0.4])],
                     features=["no", "yes"])
    assert figures["auc"] == 1.0
    assert figures["brier"] == pytest.approx((0.04 + 0.09 + 0.36) / 3)


def test_text_labels_without_named_columns_or_outside_them_get_no_probability_figures():
    rows = [("setosa", "setosa", [0.9, 0.05, 0.05]), ("versicolor", "versicolor", [0.1, 0.7, 0.2])]
    assert "auc" not in scored(rows, features=None)
    assert "auc" not in scored(rows + [("hybrid", "setosa", [0.5, 0.25, 0.25])])
