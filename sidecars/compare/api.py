"""The comparator's published interface: what other parts (the router's control plane, the
judging metrics, the command line) use of it, and nothing else; every other module of compare/
is its insides (tests/test_import_rules.py checks).
"""

from __future__ import annotations

from meshserve.sidecars.compare.comparison import compare
from meshserve.sidecars.compare.report import page, text
from meshserve.sidecars.compare.verdict import Thresholds

__all__ = ["Thresholds", "compare", "page", "text"]
