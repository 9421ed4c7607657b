"""What other parts may ask of a Python package's model without serving it: the estimator loaded
the way the runtime loads it, the columns it was fitted on and the categories it learnt.

The validation gate makes up rows from them (meshserve/deploy/made_up_rows.py); the modules
behind these names are the Python runtime's insides (tests/test_import_rules.py checks).
"""

from __future__ import annotations

from meshserve.adapters.python.categories import estimator_columns, learnt_categories, onnx_categories
from meshserve.adapters.python.frames import FramePlan
from meshserve.adapters.python.load_errors import load_estimator

__all__ = ["FramePlan", "estimator_columns", "learnt_categories", "load_estimator", "onnx_categories"]
