"""The project's inference .proto is wire-identical to the binding stock tritonclient uses,
and the generated control-API code is fresh."""

import subprocess
import sys

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc
from tritonclient.grpc import service_pb2

from conftest import ROOT

STANDARD_RPCS = ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
                 "ModelStreamInfer"]


@pytest.fixture(scope="module")
def our_file(tmp_path_factory) -> descriptor_pb2.FileDescriptorProto:
    out = tmp_path_factory.mktemp("descriptors") / "inference.pb"
    assert protoc.main(["protoc", f"-I{ROOT / 'protos'}", f"--descriptor_set_out={out}",
                        "inference/grpc_service.proto"]) == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return files.file[0]


@pytest.fixture(scope="module")
def triton_file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    service_pb2.DESCRIPTOR.CopyToProto(proto)
    return proto


def wire_shape(message: descriptor_pb2.DescriptorProto, prefix: str) -> dict:
    """Everything about a message that decides its bytes on the wire, nested types included."""
    shape = {prefix: sorted((f.name, f.number, f.type, f.label, f.type_name.lstrip("."),
                             f.oneof_index if f.HasField("oneof_index") else None) for f in message.field)}
    for nested in message.nested_type:
        shape.update(wire_shape(nested, f"{prefix}.{nested.name}"))
    return shape


def test_the_package_is_inference_like_the_specification(our_file):
    assert our_file.package == "inference"
    assert [s.name for s in our_file.service] == ["GRPCInferenceService"]


def test_every_message_is_wire_identical_to_tritonclients(our_file, triton_file):
    theirs = {m.name: m for m in triton_file.message_type}
    assert our_file.message_type, "no messages parsed"
    for message in our_file.message_type:
        assert message.name in theirs, f"{message.name} is not in tritonclient's protocol"
        assert wire_shape(message, message.name) == wire_shape(theirs[message.name], message.name), message.name


def test_every_standard_rpc_has_the_same_types_and_streaming(our_file, triton_file):
    ours = {m.name: m for m in our_file.service[0].method}
    theirs = {m.name: m for m in triton_file.service[0].method}
    assert sorted(ours) == sorted(STANDARD_RPCS)
    for name in STANDARD_RPCS:
        mine, triton = ours[name], theirs[name]
        assert (mine.input_type, mine.output_type, mine.client_streaming, mine.server_streaming) == \
               (triton.input_type, triton.output_type, triton.client_streaming, triton.server_streaming), name


def test_a_changed_field_number_would_be_caught(our_file, triton_file):
    changed = descriptor_pb2.DescriptorProto()
    changed.CopyFrom(next(m for m in our_file.message_type if m.name == "ModelInferRequest"))
    changed.field[0].number = 99
    original = next(m for m in triton_file.message_type if m.name == "ModelInferRequest")
    assert wire_shape(changed, "x") != wire_shape(original, "x")


def test_generated_control_code_is_fresh():
    result = subprocess.run([sys.executable, "scripts/generate_protos.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
