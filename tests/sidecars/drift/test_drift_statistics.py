"""The drift tests: quiet on large samples of unchanged data, loud on a real shift, and quiet on
small samples whatever they hold."""

import numpy as np
import pytest
from meshserve.sidecars.drift.baseline import feature_baseline
from meshserve.sidecars.drift.statistics import compare

PSI, ALPHA, MIN_SAMPLES = 0.2, 0.01, 100


def drifted(comparison):
    return comparison.drifted(PSI, ALPHA, MIN_SAMPLES)


@pytest.fixture(scope="module")
def numeric():
    rng = np.random.default_rng(0)
    training = rng.normal(10.0, 2.0, 2000)
    return feature_baseline("input", "x", "x", "FP64", training.tolist())


@pytest.mark.parametrize("rows", [200, 1000, 100_000])
def test_unchanged_numbers_stay_quiet_even_on_a_large_sample(numeric, rows):
    live = np.random.default_rng(rows).normal(10.0, 2.0, rows)
    result = compare(numeric, live.tolist())
    assert not drifted(result)
    assert result.psi < 0.05 and result.wasserstein_std < 0.2


def test_a_tiny_shift_is_significant_on_a_huge_sample_but_no_drift(numeric):
    live = np.random.default_rng(1).normal(10.2, 2.0, 100_000)  # 0.1 std: real, but nobody acts on it
    result = compare(numeric, live.tolist())
    assert result.p_value < 1e-6
    assert result.psi < PSI and not drifted(result)


def test_a_mean_shifted_by_two_standard_deviations_is_drift(numeric):
    live = np.random.default_rng(2).normal(14.0, 2.0, 1000)
    result = compare(numeric, live.tolist())
    assert result.test == "chi-square" and drifted(result)
    assert result.psi > 2.0 and result.wasserstein_std == pytest.approx(2.0, abs=0.2)


def test_a_small_window_uses_kolmogorov_smirnov_and_still_sees_a_big_shift(numeric):
    live = np.random.default_rng(3).normal(14.0, 2.0, 40)
    result = compare(numeric, live.tolist())
    assert result.test == "kolmogorov-smirnov" and result.p_value < 1e-6
    assert not result.drifted(PSI, ALPHA, min_samples=100), "below min_samples nothing is decided"
    assert result.drifted(PSI, ALPHA, min_samples=20)


def test_a_small_unchanged_window_is_not_drift(numeric):
    for seed in range(20):
        live = np.random.default_rng(100 + seed).normal(10.0, 2.0, 120)
        assert not drifted(compare(numeric, live.tolist())), seed


def test_missing_values_where_training_had_none_are_drift(numeric):
    live = np.random.default_rng(4).normal(10.0, 2.0, 1000).tolist()
    live[:300] = [float("nan")] * 300
    result = compare(numeric, live)
    assert drifted(result) and result.live_shares[-1] == pytest.approx(0.3)


@pytest.fixture(scope="module")
def colours():
    rng = np.random.default_rng(5)
    training = rng.choice(["red", "green", "blue"], 3000, p=[0.5, 0.3, 0.2])
    return feature_baseline("input", "colour", "colour", "BYTES", training.tolist())


def test_unchanged_categories_stay_quiet(colours):
    live = np.random.default_rng(6).choice(["red", "green", "blue"], 50_000, p=[0.5, 0.3, 0.2])
    result = compare(colours, live.tolist())
    assert not drifted(result) and result.js_distance < 0.02


def test_a_category_never_seen_is_drift_and_shows_in_the_unseen_bin(colours):
    rng = np.random.default_rng(7)
    live = rng.choice(["red", "green", "blue"], 1000, p=[0.5, 0.3, 0.2]).tolist()
    live[::3] = ["purple"] * len(live[::3])
    result = compare(colours, live)
    assert drifted(result)
    assert result.live_shares[result.labels.index("(unseen)")] == pytest.approx(1 / 3, abs=0.01)


def test_class_labels_are_categories_and_a_changed_mix_is_drift():
    labels = feature_baseline("output", "label", "label", "INT64", [0] * 400 + [1] * 600)
    assert labels.kind == "categorical" and labels.categories == {"1": 0.6, "0": 0.4}
    assert not drifted(compare(labels, [0] * 4000 + [1] * 6000))
    assert drifted(compare(labels, [0] * 800 + [1] * 200))


def test_integers_with_many_values_are_numbers():
    counts = feature_baseline("input", "n", "n", "INT64", list(range(500)))
    assert counts.kind == "numeric" and len(counts.edges) == 9
