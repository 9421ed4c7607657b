"""The control API is not the public's: on the inference port it answers only peers in
`control_from` (loopback by default), while inference stays open to everyone the mesh serves.
Before, any client could move all traffic with SetRollout on the public port."""

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES, start_mesh
from meshserve.v1 import control_pb2 as cpb
from meshserve.v1 import control_pb2_grpc as cpb_grpc


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    folder = tmp_path_factory.mktemp("untrusted-peer")
    (folder / "iris_species").symlink_to(EXAMPLES / "iris_species", target_is_directory=True)
    # The test client is on loopback; trusting only another network makes it an outsider.
    (folder / "meshserve.yaml").write_text("security:\n  control_from: [10.255.255.0/24]\n")
    process = start_mesh(folder)
    yield process
    process.stop()


def test_an_outside_peer_cannot_change_or_read_the_deployment_but_can_infer(mesh):
    with grpc.insecure_channel(mesh.address) as channel:
        control = cpb_grpc.ControlStub(channel)
        rollout = cpb.SetRolloutRequest(rollout=cpb.Rollout(model="iris-species", weights={"1": 100}))
        for call in (lambda: control.SetRollout(rollout, timeout=10),
                     lambda: control.ListModels(cpb.ListModelsRequest(), timeout=10),
                     lambda: control.GetRecords(cpb.GetRecordsRequest(request_id="x"), timeout=10)):
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        request = pb.ModelInferRequest(model_name="iris-species")
        request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
        request.raw_input_contents.append(np.ones((1, 4), np.float32).tobytes())
        assert pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10).outputs[0].name == "species"
