"""One client's slow or bad requests never cost other clients: a call abandoned at its deadline
frees its worker, health says NOT_SERVING while the model cannot take work, and errors caused
by clients never make Envoy eject a healthy adapter."""

import re
import shutil
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import ROOT, start_mesh
from meshserve.envoy.admin import EnvoyAdmin

FLAKY = ROOT / "tests" / "models" / "flaky"


@pytest.fixture(scope="module")
def two_thread_flaky(tmp_path_factory):
    """The flaky test model (sleeps when x[0, 0] == -2) with two predict threads."""
    folder = tmp_path_factory.mktemp("two-threads") / "flaky"
    shutil.copytree(FLAKY, folder)
    (folder / "model.yaml").write_text((folder / "model.yaml").read_text() + "python: {threads: 2}\n")
    return folder


def flaky(first: float, second: float = 0.0) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="flaky", raw_input_contents=[np.array([[first, second]]).tobytes()])
    request.inputs.add(name="x", datatype="FP64", shape=[1, 2])
    return request


def health_of(channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status


def test_calls_abandoned_at_their_deadline_free_their_workers_and_health_tells_when_none_is_left(
        adapter_factory, two_thread_flaky):
    adapter = adapter_factory(two_thread_flaky, env={"MESHSERVE_PYTHON_ABANDONED_THREADS": "2",
                                                     "MESHSERVE_HEALTH_POLL_S": "0.1"})
    with grpc.insecure_channel(adapter.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        slow = [stub.ModelInfer.future(flaky(-2, 4.0), timeout=0.3) for _ in range(2)]  # both threads, 4 s each
        for call in slow:
            with pytest.raises(grpc.RpcError) as caught:
                call.result()
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        started = time.monotonic()
        assert stub.ModelInfer(flaky(1.0), timeout=2).outputs[0].name == "y"  # not stuck behind them
        assert time.monotonic() - started < 1.0
        time.sleep(0.5)
        assert health_of(channel) == health_pb2.HealthCheckResponse.NOT_SERVING  # both spares are taken
        deadline = time.monotonic() + 8
        while health_of(channel) != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, "health never came back after the abandoned calls returned"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    folder = tmp_path_factory.mktemp("isolation-mesh")
    (folder / "flaky").symlink_to(FLAKY, target_is_directory=True)
    process = start_mesh(folder)
    process.admin = EnvoyAdmin(re.search(r"admin http://(\S+),", process.output).group(1))
    yield process
    process.stop()


def test_answers_never_count_as_a_replica_failure_only_its_connections_do():
    from meshserve.envoy.clusters import render_clusters
    from meshserve.envoy.layout import UpstreamAddresses
    from meshserve.spec.deployment_spec import DeploymentSpec, ModelDeployment, Variant

    spec = DeploymentSpec(models={"m": ModelDeployment(variants=[Variant(version="1", weight=1)])})
    outlier = render_clusters(spec, UpstreamAddresses(router=[], variants={("m", "1"): ["127.0.0.1:1"]}))[
        "resources"][0]["outlier_detection"]
    assert outlier["split_external_local_origin_errors"] and outlier["enforcing_consecutive_local_origin_failure"]
    assert outlier["enforcing_consecutive_gateway_failure"] == outlier["enforcing_consecutive_5xx"] == 0


def test_errors_caused_by_clients_never_eject_a_healthy_adapter(mesh):
    with grpc.insecure_channel(mesh.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for make, timeout, code in [
            (lambda: flaky(-2, 1.0), 0.2, grpc.StatusCode.DEADLINE_EXCEEDED),  # the client's own tight deadline
            (lambda: flaky(-1), 5, grpc.StatusCode.INTERNAL),                  # the model refuses its input
            (lambda: flaky(np.nan), 5, grpc.StatusCode.INVALID_ARGUMENT),     # the input policy refuses it
        ]:
            for _ in range(6):
                with pytest.raises(grpc.RpcError) as caught:
                    stub.ModelInfer(make(), timeout=timeout)
                assert caught.value.code() == code
        time.sleep(1.5)  # outlier detection runs every second
        ejected = {k: v for k, v in mesh.admin.stats("cluster.variant").items() if "ejections_enforced_total" in k}
        assert ejected and not any(ejected.values()), ejected
        assert stub.ModelInfer(flaky(1.0), timeout=5).outputs[0].name == "y"
