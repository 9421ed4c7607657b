"""A trace receiver that is down never fails or slows a prediction: spans are dropped and counted."""

from __future__ import annotations

import statistics
import time
import urllib.request

import grpc
import numpy as np
from conftest import EXAMPLES, free_port
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

REQUESTS = 300


def latencies_ms(address: str) -> list[float]:
    rows = np.random.default_rng(1).uniform(1, 20, size=(1, 30))
    request = pb.ModelInferRequest(
        model_name="breast-cancer", raw_input_contents=[rows.tobytes()],
        inputs=[pb.ModelInferRequest.InferInputTensor(name="features", datatype="FP64", shape=[1, 30])])
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        stub.ModelInfer(request, timeout=10)  # warm up
        took = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            stub.ModelInfer(request, timeout=10)  # raises if any prediction fails
            took.append((time.perf_counter() - started) * 1e3)
    return took


def dropped_spans(metrics_address: str) -> float:
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("meshserve_spans_dropped_total"))


def test_an_unreachable_trace_receiver_neither_fails_nor_slows_predictions(adapter_factory):
    metrics = f"127.0.0.1:{free_port()}"
    traced = adapter_factory(EXAMPLES / "breast_cancer", env={
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_BSP_MAX_QUEUE_SIZE": "64",  # small, so the queue fills while the exporter retries
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "32",
        "MESHSERVE_METRICS_LISTEN": metrics,
    })
    plain = adapter_factory(EXAMPLES / "breast_cancer")

    with_dead_receiver = latencies_ms(traced.address)
    without_tracing = latencies_ms(plain.address)

    # A blocked exporter would hold answers for its whole 2 s timeout.
    assert max(with_dead_receiver) < 1000, max(with_dead_receiver)
    assert statistics.median(with_dead_receiver) < 2 * statistics.median(without_tracing) + 1.0, \
        (statistics.median(with_dead_receiver), statistics.median(without_tracing))
    assert dropped_spans(metrics) > 0
