"""The project's inference .proto files (the service and Triton's ModelConfig) are wire-identical
to the binding stock tritonclient uses, every RPC the router answers included, and the generated
control-API code is fresh."""

import subprocess
import sys

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc
from tritonclient.grpc import model_config_pb2, service_pb2

from conftest import ROOT

STANDARD_RPCS = ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
                 "ModelStreamInfer"]
# Everything the router answers: the standard methods and Triton's extensions.
ROUTER_RPCS = STANDARD_RPCS + [
    "ModelConfig", "ModelStatistics", "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
    "SystemSharedMemoryStatus", "SystemSharedMemoryRegister", "SystemSharedMemoryUnregister",
    "CudaSharedMemoryStatus", "CudaSharedMemoryRegister", "CudaSharedMemoryUnregister", "TraceSetting", "LogSettings"]


@pytest.fixture(scope="module")
def our_files(tmp_path_factory) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    out = tmp_path_factory.mktemp("descriptors") / "inference.pb"
    assert protoc.main(["protoc", f"-I{ROOT / 'protos'}", f"--descriptor_set_out={out}", "--include_imports",
                        "inference/grpc_service.proto"]) == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return {f.name.rpartition("/")[2]: f for f in files.file}


@pytest.fixture(scope="module")
def our_file(our_files) -> descriptor_pb2.FileDescriptorProto:
    return our_files["grpc_service.proto"]


def copied(descriptor) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    descriptor.CopyToProto(proto)
    return proto


@pytest.fixture(scope="module")
def triton_file() -> descriptor_pb2.FileDescriptorProto:
    return copied(service_pb2.DESCRIPTOR)


def wire_shape(message: descriptor_pb2.DescriptorProto, prefix: str) -> dict:
    """Everything about a message that decides its bytes on the wire, nested types included."""
    shape = {prefix: sorted((f.name, f.number, f.type, f.label, f.type_name.lstrip("."),
                             f.oneof_index if f.HasField("oneof_index") else None) for f in message.field)}
    for nested in message.nested_type:
        shape.update(wire_shape(nested, f"{prefix}.{nested.name}"))
    for enum in message.enum_type:
        shape[f"{prefix}.{enum.name}"] = enum_shape(enum)
    return shape


def enum_shape(enum: descriptor_pb2.EnumDescriptorProto) -> list:
    return sorted((v.name, v.number) for v in enum.value)


def test_the_package_is_inference_like_the_specification(our_file):
    assert our_file.package == "inference"
    assert [s.name for s in our_file.service] == ["GRPCInferenceService"]


def test_every_message_is_wire_identical_to_tritonclients(our_file, triton_file):
    theirs = {m.name: m for m in triton_file.message_type}
    assert sorted(m.name for m in our_file.message_type) == sorted(theirs), "a message is missing or extra"
    for message in our_file.message_type:
        assert message.name in theirs, f"{message.name} is not in tritonclient's protocol"
        assert wire_shape(message, message.name) == wire_shape(theirs[message.name], message.name), message.name


def test_model_config_is_wire_identical_to_tritons(our_files):
    ours, theirs = our_files["model_config.proto"], copied(model_config_pb2.DESCRIPTOR)
    assert ours.package == theirs.package == "inference"
    assert sorted(m.name for m in ours.message_type) == sorted(m.name for m in theirs.message_type)
    triton_messages = {m.name: m for m in theirs.message_type}
    for message in ours.message_type:
        assert wire_shape(message, message.name) == wire_shape(triton_messages[message.name], message.name), message.name
    triton_enums = {e.name: e for e in theirs.enum_type}
    assert sorted(e.name for e in ours.enum_type) == sorted(triton_enums)
    for enum in ours.enum_type:
        assert enum_shape(enum) == enum_shape(triton_enums[enum.name]), enum.name


def test_every_rpc_the_router_answers_has_the_same_types_and_streaming(our_file, triton_file):
    ours = {m.name: m for m in our_file.service[0].method}
    theirs = {m.name: m for m in triton_file.service[0].method}
    assert sorted(ours) == sorted(ROUTER_RPCS) == sorted(theirs)
    for name in ROUTER_RPCS:
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
