"""An adapter's statistics in Triton's terms, from the events its observers see."""

import grpc
import numpy as np

from meshserve.adapters.statistics import InferenceStatistics
from meshserve.core.mesh_protocol import CallInfo
from meshserve.core.observers import InferenceEvent
from meshserve.router.data_plane.statistics import merge


def event(rows: int, batch_size=None, code=grpc.StatusCode.OK, **timings) -> InferenceEvent:
    answered = InferenceEvent(side="adapter", call=CallInfo(request_id="r"), model="m", version="1",
                              inputs={"x": np.zeros((rows, 2))}, batch_size=batch_size, code=code)
    answered.timings.update(timings)
    return answered


def test_rows_requests_executions_and_stages_are_counted_as_triton_does():
    stats = InferenceStatistics("m", "1")
    stats.observe(event(3, decode=0.001, predict=0.002, encode=0.0005, total=0.004))
    for _ in range(4):  # four requests served by one micro-batch
        stats.observe(event(1, batch_size=4, queue=0.0002, decode=0.001, predict=0.002, encode=0.0005, total=0.004))
    stats.observe(event(2, code=grpc.StatusCode.INVALID_ARGUMENT, total=0.001))
    snapshot = stats.snapshot()
    assert (snapshot.name, snapshot.version) == ("m", "1")
    assert snapshot.inference_count == 7 and snapshot.execution_count == 2
    infer = snapshot.inference_stats
    assert (infer.success.count, infer.fail.count) == (5, 1)
    # Every stage counted for every answered request, a zero queue wait too.
    assert infer.queue.count == infer.compute_input.count == infer.compute_infer.count == infer.compute_output.count == 5
    assert infer.queue.ns == 4 * 200_000 and infer.compute_infer.ns == 5 * 2_000_000
    assert snapshot.last_inference > 0


def test_replicas_add_up():
    one, two = InferenceStatistics("m", "1"), InferenceStatistics("m", "1")
    one.observe(event(2, decode=0.001, predict=0.001, encode=0.001, total=0.003))
    two.observe(event(5, decode=0.001, predict=0.001, encode=0.001, total=0.003))
    total = one.snapshot()
    merge(total, two.snapshot())
    assert total.inference_count == 7 and total.inference_stats.success.count == 2
    assert total.inference_stats.compute_infer.ns == 2_000_000
