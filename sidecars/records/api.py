"""The records sidecar's published interface: what other parts (the router's control plane, the
launcher, the judging metrics, the command line) use of the records, and nothing else.

A server attaches the record observer from observer.py (kept apart: adapters import it at
start, and it must stay light); the store's own query API is store.py's `RecordStore`. Every
other module of records/ is its insides (tests/test_import_rules.py checks).
"""

from __future__ import annotations

from meshserve.sidecars.records.audit import audit, describe, from_message, to_message
from meshserve.sidecars.records.explain import EXPLAIN_ID_PREFIX, CannotExplain, explain
from meshserve.sidecars.records.export import export
from meshserve.sidecars.records.outcomes import import_outcomes, outcomes_from_messages, read_rows
from meshserve.sidecars.records.quality import headline, quality
from meshserve.sidecars.records.quality_report import alerts_for, page, text
from meshserve.sidecars.records.store import RecordStore, default_store_url, open_store, redacted, store_url_for

__all__ = [
    # the store: where it is, opened for reading and writing
    "RecordStore", "default_store_url", "open_store", "redacted", "store_url_for",
    # one request's records (meshserve audit, GetRecords), and what the model saw in it
    "audit", "describe", "from_message", "to_message", "EXPLAIN_ID_PREFIX", "CannotExplain", "explain",
    # ground truth reported later (RecordOutcomes, meshserve outcomes) and live quality
    "import_outcomes", "outcomes_from_messages", "read_rows", "headline", "quality", "alerts_for", "page", "text",
    # records out to files
    "export",
]
