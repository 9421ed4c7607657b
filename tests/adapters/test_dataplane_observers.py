"""The adapter tells its observers about every inference, answered or failed, without delaying the answer."""

import asyncio

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

from conftest import ROOT
from meshserve.adapters.dataplane import ModelService
from meshserve.adapters.runtime import Runtime
from meshserve.core.mesh_protocol import CallInfo
from meshserve.core.model_package import load_package
from meshserve.core.observers import Observers


class Doubler(Runtime):
    async def load(self, package):
        self.package = package

    async def predict(self, inputs):
        if (inputs["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": inputs["x"] * 2}


class Collector:
    def __init__(self, before_answer=False):
        self.before_answer = before_answer
        self.events = []

    def observe(self, event):
        self.events.append(event)


class Broken:
    before_answer = False

    def observe(self, event):
        raise RuntimeError("observer bug")


def request(values) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="flaky", raw_input_contents=[np.asarray(values, dtype=np.float64).tobytes()])
    message.inputs.add(name="x", datatype="FP64", shape=[1, 2])
    return message


def service(*observers) -> ModelService:
    return ModelService(load_package(ROOT / "tests" / "models" / "flaky"), Doubler(), Observers(observers))


def test_the_adapter_tells_observers_what_it_decoded_answered_and_how_long_each_stage_took():
    after, before = Collector(), Collector(before_answer=True)

    async def scenario():
        answer = await service(Broken(), after, before).infer(request([[1.0, 2.0]]), CallInfo("r1", "canary"))
        seen_before_return = len(after.events)
        await asyncio.sleep(0)  # observers that may run late run once the loop is free
        return answer, seen_before_return

    answer, seen_before_return = asyncio.run(scenario())
    assert answer.id == "r1"
    assert seen_before_return == 0, "an ordinary observer must not run before the answer is returned"
    assert len(before.events) == 1 and len(after.events) == 1
    event = after.events[0]
    assert (event.side, event.model, event.version, event.call.role) == ("adapter", "flaky", "1", "canary")
    assert event.code == grpc.StatusCode.OK and event.error == ""
    assert event.inputs["x"].tolist() == [[1.0, 2.0]] and event.outputs["y"].tolist() == [[2.0, 4.0]]
    assert {"decode", "predict", "encode", "total"} <= set(event.timings)
    assert all(seconds >= 0 for seconds in event.timings.values())


def test_a_failed_inference_is_observed_with_its_status_and_message():
    collector = Collector()

    async def scenario():
        with pytest.raises(Exception):
            await service(collector).infer(request([[-1.0, 2.0]]), CallInfo("r2"))
        await asyncio.sleep(0)

    asyncio.run(scenario())
    event = collector.events[0]
    assert event.code == grpc.StatusCode.INTERNAL and "negative input" in event.error
    assert event.inputs is not None and event.outputs is None
