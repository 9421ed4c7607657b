"""Values a model cannot take are the client's mistake: INVALID_ARGUMENT naming input, row and
column, before the model sees them (they used to reach scikit-learn and come back INTERNAL)."""

import numpy as np
import pytest

from meshserve.core.errors import InvalidInput, ManifestError
from meshserve.core.input_policy import InputPolicy, check_values
from meshserve.core.model_package import Signature

SIGNATURE = Signature.model_validate({
    "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 2], "features": ["height", "width"]}],
    "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}],
})
DEFAULT = InputPolicy()


@pytest.mark.parametrize("value, what", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite"),
                                         (1e308, "beyond the largest magnitude")])
def test_the_default_policy_refuses_values_no_estimator_can_score(value, what):
    x = np.array([[1.0, 2.0], [3.0, value]])
    with pytest.raises(InvalidInput) as caught:
        check_values({"x": x}, SIGNATURE, DEFAULT)
    assert caught.value.message.startswith(f"input 'x': column 'width' row 1 is {what}")


def test_zero_rows_are_refused_by_default_and_allowed_when_the_model_says_so():
    empty = {"x": np.empty((0, 2))}
    with pytest.raises(InvalidInput, match="has zero rows"):
        check_values(empty, SIGNATURE, DEFAULT)
    check_values(empty, SIGNATURE, InputPolicy(empty="allow"))


def test_a_model_that_takes_missing_values_allows_nan_and_still_refuses_infinity():
    policy = InputPolicy(nan="allow")
    check_values({"x": np.array([[np.nan, 1.0]])}, SIGNATURE, policy)
    with pytest.raises(InvalidInput, match="infinite"):
        check_values({"x": np.array([[np.inf, 1.0]])}, SIGNATURE, policy)


def test_ordinary_values_pass():
    check_values({"x": np.array([[1.0, -2.5e30]])}, SIGNATURE, DEFAULT)


def test_the_policy_is_read_from_model_yaml_and_checked_strictly(tmp_path):
    from meshserve.core.model_package import load_package

    (tmp_path / "model.yaml").write_text(
        "name: m\nversion: '1'\nruntime: python\nentrypoint: m:f\n"
        "signature:\n  inputs: [{name: x, datatype: FP64, shape: [-1, 2]}]\n"
        "  outputs: [{name: y, datatype: FP64, shape: [-1]}]\n"
        "input_policy: {nan: allow, max_abs: 1000}\n")
    policy = load_package(tmp_path).manifest.input_policy
    assert policy.nan == "allow" and policy.max_abs == 1000
    (tmp_path / "model.yaml").write_text((tmp_path / "model.yaml").read_text().replace("nan: allow", "nan: maybe"))
    with pytest.raises(ManifestError, match="input_policy.nan"):
        load_package(tmp_path)
