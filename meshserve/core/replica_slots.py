"""How many requests one adapter replica works on at once, read from its model.yaml.

Envoy's circuit breakers are sized from it (envoy/limits.py): a replica can usefully hold its
working slots' worth of requests, plus a short queue per slot; beyond that a request only
waits, so the mesh sheds it instead.
"""

from __future__ import annotations

from meshserve.core.settings import get_settings

# Requests a Triton server takes from one adapter at once when nothing says otherwise: Triton
# queues and batches them itself (its dynamic batcher wants many in flight to fill a batch).
TRITON_SLOTS = 32
JAVA_DEFAULT_THREADS = 8  # adapters/java/options.py `threads`


def replica_slots(manifest) -> int:
    """Working slots of one replica: coalesced batch rows when micro-batching, else its workers."""
    if manifest.batching.max_batch_size > 1:
        return manifest.batching.max_batch_size * manifest.batching.concurrency
    section = manifest.runtime_sections.get(manifest.runtime, {})
    if manifest.runtime == "python":
        threads = section.get("threads")
        return max(1, get_settings().python_threads if threads is None else int(threads))
    if manifest.runtime == "r":
        return max(1, int(section.get("workers") or 1))  # 0 workers: the adapter's own R thread
    if manifest.runtime == "java":
        return max(1, int(section.get("threads") or JAVA_DEFAULT_THREADS))
    return TRITON_SLOTS
