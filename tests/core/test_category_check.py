"""The category check refuses exactly the values outside a closed column's known categories, naming
the input, column, row and value; a column the model takes any value for is never refused."""

from __future__ import annotations

import numpy as np
import pytest

from meshserve.core.category_check import CategoryCheck, KnownCategories, declared_categories, merged
from meshserve.core.errors import InvalidInput
from meshserve.core.model_package import Signature

SIGNATURE = Signature.model_validate({
    "inputs": [{"name": "place", "datatype": "BYTES", "shape": [-1, 2], "features": ["region", "town"],
                "limits": {"town": {"categories": ["a", "b"]}}},
               {"name": "colour", "datatype": "BYTES", "shape": [-1], "limits": {"colour": {"categories": ["red"]}}}],
    "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}]})


def test_declared_categories_are_checked_per_column_and_row():
    check = CategoryCheck(declared_categories(SIGNATURE))
    check.check({"place": np.array([[b"x", b"a"], [b"y", b"b"]], dtype=object),
                 "colour": np.array([b"red"] * 2, dtype=object)})
    with pytest.raises(InvalidInput) as caught:
        check.check({"place": np.array([[b"x", b"a"], [b"y", b"c"]], dtype=object)})
    assert caught.value.input_name == "place"
    assert "column 'town' row 1: unknown category 'c'; the model knows a, b" in caught.value.reason


def test_the_models_own_categories_win_and_an_open_column_is_not_refused():
    own = [KnownCategories("place", 1, "town", ("a", "b", "c"), "OneHotEncoder 'onehot'"),
           KnownCategories("colour", None, "colour", ("red",), "OneHotEncoder 'colour'", closed=False)]
    check = CategoryCheck(merged(own, declared_categories(SIGNATURE)))
    check.check({"place": np.array([[b"x", b"c"]], dtype=object), "colour": np.array([b"blue"], dtype=object)})


def test_numeric_categories_are_compared_as_numbers():
    check = CategoryCheck([KnownCategories("code", None, "code", (1.0, 2.0), "OrdinalEncoder 'codes'")])
    check.check({"code": np.array([1, 2, 2], dtype=np.int64)})
    with pytest.raises(InvalidInput, match="row 2: unknown category '7'"):
        check.check({"code": np.array([1, 2, 7], dtype=np.int64)})
