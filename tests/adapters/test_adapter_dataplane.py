"""The adapter's data plane hands runtimes what they need besides tensors."""

import asyncio

import numpy as np
from tritonclient.grpc import service_pb2 as pb

from conftest import ROOT
from meshserve.adapters.dataplane import ModelService
from meshserve.core.mesh_protocol import CallInfo as Call
from meshserve.adapters.runtime import Runtime, request_deadline
from meshserve.core.model_package import load_package


class DeadlineEcho(Runtime):
    """Answers with the deadline it was given (-1 for none), as a runtime calling a server would pass it on."""

    async def load(self, package):
        self.package = package

    async def predict(self, inputs):
        deadline = request_deadline.get()
        return {"y": np.full_like(inputs["x"], -1.0 if deadline is None else deadline)}


def answer_for(call: Call) -> list[float]:
    service = ModelService(load_package(ROOT / "tests" / "models" / "flaky"), DeadlineEcho())
    request = pb.ModelInferRequest(model_name="flaky", raw_input_contents=[np.zeros((1, 2)).tobytes()])
    request.inputs.add(name="x", datatype="FP64", shape=[1, 2])
    response = asyncio.run(service.infer(request, call))
    return np.frombuffer(response.raw_output_contents[0]).tolist()


def test_the_callers_deadline_reaches_the_runtime():
    assert answer_for(Call("r1", "primary", deadline=1234.5)) == [1234.5, 1234.5]


def test_no_deadline_reaches_the_runtime_when_the_caller_set_none():
    assert answer_for(Call("r2", "primary")) == [-1.0, -1.0]
