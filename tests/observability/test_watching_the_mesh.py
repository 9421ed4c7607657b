"""A whole mesh (`meshserve up`: Envoy, router, adapters of every world) seen from outside:
its traces at a real OTLP receiver, its metrics through a real Prometheus."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from watched_mesh import (  # noqa: F401  (fixtures)
    SHADOW, SPLIT, breast_cancer_request, front, observed_mesh, otlp, tensor_request, trailers)

pytestmark = pytest.mark.slow

ROWS = np.random.default_rng(7).uniform(5, 25, size=(1, 30))


def new_traceparent() -> tuple[str, str, str]:
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def by_id(spans):
    return {s.span_id: s for s in spans}


def ancestors(span, spans_by_id):
    chain = []
    while span.parent_id in spans_by_id:
        span = spans_by_id[span.parent_id]
        chain.append(span)
    return chain


def test_one_request_with_a_client_traceparent_is_one_connected_trace(front, otlp):
    traceparent, trace_id, client_span = new_traceparent()
    request_id = uuid.uuid4().hex
    response, call = front.ModelInfer.with_call(
        breast_cancer_request(ROWS), metadata=[("traceparent", traceparent), ("x-request-id", request_id)])
    assert trailers(call)["x-meshserve-trace-id"] == trace_id

    def complete(_):
        spans = otlp.trace(trace_id)
        adapters = [s for s in spans if s.service == "meshserve-adapter" and s.name.startswith("ModelInfer")]
        # Envoy sends its spans in batches, at least every 5 s.
        return len(adapters) >= 2 and any(s.name == "predict python" for s in spans) and \
            any(s.parent_id == client_span for s in spans) and sum(s.service == "meshserve-envoy" for s in spans) >= 4
    otlp.wait_for(complete, timeout=20)
    spans = otlp.trace(trace_id)
    spans_by_id = by_id(spans)

    # Exactly one trace: every span of this request, wherever it was made, carries the client's trace id.
    tagged = [s for s in otlp.spans if s.attributes.get("meshserve.request_id") == request_id]
    assert {s.trace_id for s in tagged} == {trace_id}
    roots = [s for s in spans if s.parent_id not in spans_by_id]
    assert [r.parent_id for r in roots] == [client_span], roots
    assert roots[0].service == "meshserve-envoy"

    router = next(s for s in spans if s.service == "meshserve-router")
    assert spans_by_id[router.parent_id].service == "meshserve-envoy"
    assert router.attributes["meshserve.model"] == "breast-cancer"
    assert router.attributes["meshserve.version"] == response.model_version
    assert router.attributes["meshserve.request_id"] == request_id
    assert router.attributes["meshserve.weights"] == "1=70,2=30 shadow 3=1"
    assert router.attributes["meshserve.status"] == "OK"

    primary = next(s for s in spans if s.service == "meshserve-adapter" and s.name.startswith("ModelInfer")
                   and s.attributes["meshserve.role"] != "shadow")
    assert primary.attributes["meshserve.version"] == response.model_version
    assert primary.attributes["meshserve.role"] == ("primary" if response.model_version == "1" else "canary")
    assert router in ancestors(primary, spans_by_id)
    assert spans_by_id[primary.parent_id].service == "meshserve-envoy"
    stages = {s.name: s for s in spans if s.parent_id == primary.span_id}
    assert {"decode", "predict python", "encode"} <= set(stages), stages
    assert stages["predict python"].attributes["meshserve.runtime"] == "python"


def test_the_shadow_copy_is_in_the_same_trace_marked_shadow(front, otlp):
    traceparent, trace_id, _ = new_traceparent()
    front.ModelInfer(breast_cancer_request(ROWS), metadata=[("traceparent", traceparent)])
    otlp.wait_for(lambda _: any(s.attributes.get("meshserve.role") == "shadow" for s in otlp.trace(trace_id))
                  and any(s.name == "mirror" for s in otlp.trace(trace_id)), timeout=20)
    spans = otlp.trace(trace_id)
    shadow = next(s for s in spans if s.attributes.get("meshserve.role") == "shadow")
    assert shadow.service == "meshserve-adapter"
    assert shadow.name == "ModelInfer shadow"
    assert shadow.attributes["meshserve.version"] == SHADOW
    router = next(s for s in spans if s.service == "meshserve-router")
    chain = ancestors(shadow, by_id(spans))
    assert chain[0].name == "mirror" and chain[0].attributes["upstream_cluster"] == f"variant|breast-cancer|{SHADOW}"
    assert router in chain


def test_a_client_without_traceparent_gets_a_trace_and_its_id(front, otlp):
    _, call = front.ModelInfer.with_call(breast_cancer_request(ROWS))
    trace_id = trailers(call)["x-meshserve-trace-id"]
    assert len(trace_id) == 32
    otlp.wait_for(lambda _: {"meshserve-envoy", "meshserve-router", "meshserve-adapter"}
                  <= {s.service for s in otlp.trace(trace_id)}, timeout=20)


def test_a_refused_request_has_its_status_and_error_on_its_spans(front, otlp):
    import grpc
    traceparent, trace_id, _ = new_traceparent()
    bad = breast_cancer_request(np.zeros((1, 29)))
    with pytest.raises(grpc.RpcError) as refused:
        front.ModelInfer(bad, metadata=[("traceparent", traceparent)])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    otlp.wait_for(lambda _: any(s.service == "meshserve-router" for s in otlp.trace(trace_id)))
    router = next(s for s in otlp.trace(trace_id) if s.service == "meshserve-router")
    assert router.attributes["meshserve.status"] == "INVALID_ARGUMENT"
    assert "features" in router.attributes["meshserve.error"]
    assert router.status_code == 2  # ERROR


RUNTIME_REQUESTS = {
    "r": lambda: tensor_request("iris-randomforest", "measurements", np.array([[5.1, 3.5, 1.4, 0.2]]), "FP64"),
    "java": lambda: tensor_request("iris_j48", "measurements", np.array([[5.1, 3.5, 1.4, 0.2]]), "FP64"),
    "triton": lambda: tensor_request("digits-triton", "pixels", np.zeros((1, 64), dtype=np.float32), "FP32"),
}


@pytest.mark.parametrize("runtime", sorted(RUNTIME_REQUESTS))
def test_each_world_shows_its_runtime_span(runtime, observed_mesh, front, otlp):
    if runtime not in observed_mesh.worlds.values():
        pytest.skip(f"the {runtime} runtime cannot run on this machine (see scripts/setup.sh)")
    traceparent, trace_id, _ = new_traceparent()
    front.ModelInfer(RUNTIME_REQUESTS[runtime](), metadata=[("traceparent", traceparent)])
    otlp.wait_for(lambda _: any(s.name == f"predict {runtime}" for s in otlp.trace(trace_id)))
    spans = otlp.trace(trace_id)
    predict = next(s for s in spans if s.name == f"predict {runtime}")
    assert by_id(spans)[predict.parent_id].service == "meshserve-adapter"
