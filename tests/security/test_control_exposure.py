"""The control API is not the public's: on the inference port it answers only peers in
`control_from` (loopback by default), while inference stays open to everyone the mesh serves.
Before, any client could move all traffic with SetRollout on the public port."""

import os
from pathlib import Path

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
                     lambda: control.GetRecords(cpb.GetRecordsRequest(request_id="x"), timeout=10),
                     lambda: control.Deploy(cpb.DeployRequest(model="iris-species", version="1", role="primary"),
                                            timeout=10)):
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        request = pb.ModelInferRequest(model_name="iris-species")
        request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
        request.raw_input_contents.append(np.ones((1, 4), np.float32).tobytes())
        assert pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10).outputs[0].name == "species"


@pytest.mark.parametrize("path", ["//meshserve.v1.Control/SetRollout", "/meshserve.v1.Control//SetRollout",
                                  "/meshserve.v1.Control%2FSetRollout", "/./meshserve.v1.Control/SetRollout",
                                  "/inference.GRPCInferenceService/../meshserve.v1.Control/SetRollout"])
def test_another_spelling_of_a_control_path_does_not_slip_past_the_rules(mesh, path):
    request = cpb.SetRolloutRequest(rollout=cpb.Rollout(model="iris-species", weights={"1": 100}))
    with grpc.insecure_channel(mesh.address) as channel:
        call = channel.unary_unary(path, request_serializer=cpb.SetRolloutRequest.SerializeToString,
                                   response_deserializer=cpb.Rollout.FromString)
        with pytest.raises(grpc.RpcError) as caught:
            call(request, timeout=10)
    # Envoy merges and normalizes the path before the rules see it; an escaped slash is a 400
    # (INTERNAL to a gRPC client) before anything is forwarded.
    expected = grpc.StatusCode.INTERNAL if "%2F" in path else grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.code() == expected, caught.value


def own_network_address() -> str | None:
    """This machine's address on its network (not loopback), if it has one."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))  # no packet is sent: this only picks the outgoing address
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def listening_addresses(pids: list[int]) -> set[str]:
    """host:port of every TCP socket in LISTEN state that PIDS hold, from /proc."""
    import socket
    import struct

    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:
                continue
            host, port = fields[1].split(":")
            raw = bytes.fromhex(host)
            raw = b"".join(struct.pack("<I", w) for w in struct.unpack(f">{len(raw) // 4}I", raw))
            found.add(f"{socket.inet_ntop(family, raw)}:{int(port, 16)}")
    return found


def test_on_a_public_address_only_the_front_listens_there_and_the_network_gets_no_control_api(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from malformed import descendants

    from conftest import RunningProcess, free_port, meshserve_argv

    (tmp_path / "iris_species").symlink_to(EXAMPLES / "iris_species", target_is_directory=True)
    port = free_port("0.0.0.0")
    mesh = RunningProcess(meshserve_argv("up", str(tmp_path), "--listen", f"0.0.0.0:{port}"))
    try:
        mesh.wait_for_line(r"clients connect to", 180)
        listening = listening_addresses(descendants(mesh.proc.pid))
        public = {a for a in listening if not a.startswith(("127.", "::1:", "::ffff:127."))}
        assert public == {f"0.0.0.0:{port}"}, listening  # router, adapters, Envoy's mesh and admin: loopback
        address = own_network_address()
        if address is None:
            pytest.skip("this machine has no network address besides loopback")
        with grpc.insecure_channel(f"{address}:{port}") as channel:
            with pytest.raises(grpc.RpcError) as caught:
                cpb_grpc.ControlStub(channel).SetRollout(
                    cpb.SetRolloutRequest(rollout=cpb.Rollout(model="iris-species", weights={"1": 100})), timeout=10)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            request = pb.ModelInferRequest(model_name="iris-species")
            request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
            request.raw_input_contents.append(np.ones((1, 4), np.float32).tobytes())
            assert pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10).outputs[0].name == "species"
    finally:
        mesh.stop()
