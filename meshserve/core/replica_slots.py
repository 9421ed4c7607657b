"""How many requests one adapter replica works on at once, read from its model.yaml.

Envoy's circuit breakers are sized from it (envoy/limits.py): a replica can usefully hold its
working slots' worth of requests, plus a short queue per slot; beyond that a request only
waits, so the mesh sheds it instead. Without micro-batching the runtime says (its options'
`working_slots`: Python's threads, R's workers, ...).
"""

from __future__ import annotations

from meshserve.core.runtimes import options_class


def replica_slots(manifest) -> int:
    """Working slots of one replica: coalesced batch rows when micro-batching, else the runtime's."""
    if manifest.batching.max_batch_size > 1:
        return manifest.batching.max_batch_size * manifest.batching.concurrency
    options = options_class(manifest.runtime).model_validate(manifest.runtime_section())
    return max(1, options.working_slots())
