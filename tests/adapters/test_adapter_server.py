"""The adapter's gRPC servicer reads each call the same way, unary or streamed."""

import asyncio

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import ROOT
from meshserve.adapters.dataplane import ModelService
from meshserve.adapters.runtime import Runtime, request_deadline
from meshserve.adapters.server import AdapterInferenceServicer
from meshserve.core.model_package import load_package


class DeadlineEcho(Runtime):
    """Answers with the deadline it was given (-1 for none)."""

    async def load(self, package):
        self.package = package

    async def predict(self, inputs):
        deadline = request_deadline.get()
        return {"y": np.full_like(inputs["x"], -1.0 if deadline is None else deadline)}


def request(request_id: str) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="flaky", id=request_id, raw_input_contents=[np.zeros((1, 2)).tobytes()])
    message.inputs.add(name="x", datatype="FP64", shape=[1, 2])
    return message


async def stream_through_adapter(metadata, timeout):
    service = ModelService(load_package(ROOT / "tests" / "models" / "flaky"), DeadlineEcho())
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(AdapterInferenceServicer(service), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)

            async def messages():
                for i in range(3):
                    yield request(f"s{i}")

            return [r async for r in stub.ModelStreamInfer(messages(), metadata=metadata, timeout=timeout)]
    finally:
        await server.stop(0)


def test_a_streamed_request_keeps_the_role_envoy_stamped_and_the_callers_deadline():
    metadata = [("x-meshserve-role", "canary"), ("x-request-id", "one-for-the-whole-stream")]
    answers = asyncio.run(stream_through_adapter(metadata, timeout=30))
    assert [a.error_message for a in answers] == ["", "", ""]
    assert [a.infer_response.parameters["meshserve_role"].string_param for a in answers] == ["canary"] * 3
    assert [a.infer_response.id for a in answers] == ["s0", "s1", "s2"]
    deadlines = [np.frombuffer(a.infer_response.raw_output_contents[0])[0] for a in answers]
    assert all(d > 0 for d in deadlines), "the stream's deadline must reach the runtime"


def test_a_stream_without_a_deadline_or_role_is_primary_with_none():
    answers = asyncio.run(stream_through_adapter([], timeout=None))
    assert {a.infer_response.parameters["meshserve_role"].string_param for a in answers} == {"primary"}
    assert {np.frombuffer(a.infer_response.raw_output_contents[0])[0] for a in answers} == {-1.0}
