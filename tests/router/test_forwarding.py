"""The router's forwarding: the headers it sets, and what its observers see."""

import asyncio

import grpc
import pytest
from tritonclient.grpc import service_pb2 as pb

from conftest import ROOT
from meshserve.core.errors import ModelNotFound
from meshserve.core.mesh_protocol import CallInfo, forwarded_headers
from meshserve.core.model_package import load_package
from meshserve.core.observers import Observers
from meshserve.router.data_plane.forwarding import Forwarder
from meshserve.spec.model_table import ModelTable


class Collector:
    before_answer = False

    def __init__(self):
        self.events = []

    def observe(self, event):
        self.events.append(event)


def test_the_router_sets_the_mesh_headers_itself_and_passes_the_clients_others():
    client = [("x-meshserve-role", "shadow"), ("x-meshserve-version", "9"), ("x-meshserve-model", "other"),
              ("x-request-id", "forged"), ("x-user-id", "u1"), ("traceparent", "00-ab-cd-01"), ("user-agent", "curl")]
    headers = forwarded_headers(client, "r1", "iris", "")
    assert headers == [("x-request-id", "r1"), ("x-meshserve-model", "iris"), ("x-user-id", "u1"),
                       ("traceparent", "00-ab-cd-01")]
    assert ("x-meshserve-version", "2") in forwarded_headers([], "r1", "iris", "2")


def test_the_router_observes_requests_it_refuses(tmp_path):
    table_path = tmp_path / "models.json"
    ModelTable.write(table_path, [(load_package(ROOT / "tests" / "models" / "flaky"), "127.0.0.1:1")])
    collector = Collector()
    forwarder = Forwarder(ModelTable.read(table_path), observers=Observers([collector]))
    unknown = pb.ModelInferRequest(model_name="no-such-model")

    async def scenario():
        with pytest.raises(ModelNotFound):
            await forwarder.infer(unknown, CallInfo("r3"))
        await asyncio.sleep(0)
        await forwarder.close()

    asyncio.run(scenario())
    event = collector.events[0]
    assert (event.side, event.model, event.code) == ("router", "no-such-model", grpc.StatusCode.NOT_FOUND)
    assert "not served here" in event.error
