"""Per-feature statistics: what the adapter's feature observer folds from decoded inputs, and
the `limits` model.yaml may declare for them (checked before anything starts)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml
from conftest import EXAMPLES

from meshserve.core.errors import ManifestError
from meshserve.core.mesh_protocol import CallInfo
from meshserve.core.model_package import load_package
from meshserve.core.observers import InferenceEvent
from meshserve.observability.feature_stats import DEFAULT_EDGES, FeatureStatistics

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def write_package(tmp_path: Path, edit) -> Path:
    target = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "iris_species", target)
    manifest = yaml.safe_load((target / "model.yaml").read_text())
    edit(manifest)
    (target / "model.yaml").write_text(yaml.safe_dump(manifest))
    return target


def with_limits(manifest: dict) -> None:
    inputs = manifest["signature"]["inputs"]
    inputs[0]["limits"] = {"sepal length (cm)": {"range": [4.0, 8.0]}}
    inputs.append({"name": "colour", "datatype": "BYTES", "shape": [-1, 1],
                   "limits": {"colour": {"categories": ["blue", "violet"]}}})


def event(inputs: dict, role: str = "primary", code=grpc.StatusCode.OK) -> InferenceEvent:
    return InferenceEvent(side="adapter", call=CallInfo(request_id="r", role=role), model="iris-species",
                          version="1", inputs=inputs, code=code)


def families(stats: FeatureStatistics) -> dict[str, list]:
    return {family.name: family.samples for family in stats.collect()}


def sample(samples, name: str, **labels) -> float:
    matching = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) == 1, (name, labels, matching)
    return matching[0]


@pytest.fixture
def stats(tmp_path) -> FeatureStatistics:
    return FeatureStatistics(load_package(write_package(tmp_path, with_limits)))


def test_numeric_features_count_values_missing_histogram_and_out_of_range(stats):
    sepal_length = np.array([3.0, 4.0, 5.5, np.nan, 8.0, 9.5])
    rows = np.column_stack([sepal_length, np.ones(6), np.full(6, 0.5), np.full(6, -2.0)])
    stats.observe(event({"measurements": rows[:2]}))
    stats.observe(event({"measurements": rows[2:]}))  # folded together, off the request path
    stats.observe(event({"measurements": rows}, role="shadow"))
    stats.observe(event({"measurements": rows}, code=grpc.StatusCode.INVALID_ARGUMENT))  # refused: not counted
    samples = [s for family in stats.collect() for s in family.samples]

    primary = {"role": "primary", "feature": "sepal length (cm)", "input": "measurements", "version": "1"}
    assert sample(samples, "meshserve_feature_values_total", **primary) == 6
    assert sample(samples, "meshserve_feature_missing_total", **primary) == 1
    assert sample(samples, "meshserve_feature_out_of_range_total", **primary) == 2  # 3.0 and 9.5
    # The declared range 4..8 in ten equal buckets; Prometheus buckets are cumulative (value <= le).
    assert sample(samples, "meshserve_feature_value_bucket", le="4.0", **primary) == 2
    assert sample(samples, "meshserve_feature_value_bucket", le="5.6", **primary) == 3
    assert sample(samples, "meshserve_feature_value_bucket", le="8.0", **primary) == 4
    assert sample(samples, "meshserve_feature_value_bucket", le="+Inf", **primary) == 5
    assert sample(samples, "meshserve_feature_value_sum", **primary) == pytest.approx(3 + 4 + 5.5 + 8 + 9.5)
    assert sample(samples, "meshserve_feature_values_total", **{**primary, "role": "shadow"}) == 6

    # Without a declared range: zero and powers of ten either side.
    width = {**primary, "feature": "petal width (cm)"}
    assert sample(samples, "meshserve_feature_value_bucket", le="-10.0", **width) == 0
    assert sample(samples, "meshserve_feature_value_bucket", le="-1.0", **width) == 6  # all six are -2
    assert sample(samples, "meshserve_feature_out_of_range_total", **width) == 0
    assert len(DEFAULT_EDGES) == 19


def test_bytes_features_count_categories_and_undeclared_ones(stats):
    colours = np.array([[b"blue"], [b"violet"], [b"blue"], [b"green"], [b""]], dtype=object)
    stats.observe(event({"measurements": np.ones((5, 4)), "colour": colours}))
    samples = [s for family in stats.collect() for s in family.samples]
    colour = {"feature": "colour", "input": "colour", "role": "primary"}
    assert sample(samples, "meshserve_feature_values_total", **colour) == 5
    assert sample(samples, "meshserve_feature_missing_total", **colour) == 1
    assert sample(samples, "meshserve_feature_out_of_range_total", **colour) == 1
    assert sample(samples, "meshserve_feature_category_total", category="blue", **colour) == 2
    assert sample(samples, "meshserve_feature_category_total", category="violet", **colour) == 1
    assert sample(samples, "meshserve_feature_category_total", category="__other__", **colour) == 1


def test_the_background_thread_folds_without_a_scrape(tmp_path):
    stats = FeatureStatistics(load_package(write_package(tmp_path, with_limits)), interval_s=0.05)
    stats._thread.start()  # what start() does, without joining the process-wide registry
    try:
        stats.observe(event({"measurements": np.ones((3, 4))}))
        for _ in range(100):
            if not stats._pending:
                break
            time.sleep(0.02)
        assert not stats._pending
    finally:
        stats.stop()


@pytest.mark.parametrize("limits, field, words, fix", [
    ({"petal colour": {"range": [0, 1]}}, "signature.inputs[0]", "not a feature of this input", "features list"),
    ({"sepal length (cm)": {"range": [5, 5]}}, "signature.inputs[0].limits.sepal length (cm)", "is empty",
     "lowest < highest"),
    ({"sepal length (cm)": {}}, "signature.inputs[0].limits.sepal length (cm)", "exactly one of range or categories",
     "{range: [lo, hi]}"),
    ({"sepal length (cm)": {"categories": ["a"]}}, "signature.inputs[0]", "has categories", "give a numeric feature"),
    ({"sepal length (cm)": {"range": [1, 2, 3]}}, "signature.inputs[0].limits.sepal length (cm).range", "",
     ""),
], ids=["unknown-feature", "empty-range", "neither", "categories-on-numbers", "three-numbers"])
def test_meshserve_check_refuses_bad_limits_with_file_field_and_fix(tmp_path, limits, field, words, fix):
    package = write_package(tmp_path, lambda m: m["signature"]["inputs"][0].update(limits=limits))
    with pytest.raises(ManifestError) as caught:
        load_package(package)
    message = str(caught.value)
    assert str(package / "model.yaml") in message and f"field '{field}" in message, message
    assert words in message and fix in message and "Fix:" in message, message


def test_a_range_on_a_bytes_feature_is_refused(tmp_path):
    def edit(manifest):
        manifest["signature"]["inputs"].append({"name": "colour", "datatype": "BYTES", "shape": [-1, 1],
                                                "limits": {"colour": {"range": [0, 1]}}})
    with pytest.raises(ManifestError, match="BYTES but has a numeric range.*Fix: give a BYTES feature categories"):
        load_package(write_package(tmp_path, edit))
