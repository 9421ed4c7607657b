"""The drift sidecar's published interface: what other parts (the launcher, the router's control
plane, the command line) use of drift, and nothing else; every other module of drift/ is its
insides (tests/test_import_rules.py checks).
"""

from __future__ import annotations

from meshserve.sidecars.drift.baseline import read_baseline, write_baseline
from meshserve.sidecars.drift.drift_tables import DriftTables, open_alert_messages
from meshserve.sidecars.drift.monitor import MonitorThread, check_model
from meshserve.sidecars.drift.package_baseline import make_baseline
from meshserve.sidecars.drift.plan import plan_for, write_plan
from meshserve.sidecars.drift.report import alert_lines, page, text

__all__ = [
    # a package's baseline of its training data (meshserve baseline)
    "make_baseline", "read_baseline", "write_baseline",
    # what the recorder's monitor checks (the launcher writes the plan), the monitor the recorder
    # runs, and one check by hand
    "plan_for", "write_plan", "MonitorThread", "check_model",
    # what the monitor found: tables in the records store, open alerts, the report
    "DriftTables", "open_alert_messages", "alert_lines", "page", "text",
]
