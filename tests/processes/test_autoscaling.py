"""Replicas that follow the load on one machine: `replicas: {min, max}` under `meshserve up`.

A model that takes 50 ms a call gets a rising load (2, then 6, then 12 requests in flight);
its variant grows from 1 replica to 3, then shrinks back to 1 once only a trickle is left,
with short cool-downs set in the spec. Every request of the whole story must succeed: new
replicas join Envoy's cluster only once healthy, and a replica leaves the cluster before it
is stopped. With `min: 0` an idle variant runs no replica at all, and its next request waits
for one to start.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from conftest import start_mesh
from models.variant_packages import write_spec, write_variant_packages
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from meshserve.envoy.admin import EnvoyAdmin

pytestmark = pytest.mark.slow

SPEC = {"models": {"elastic": {
    "variants": [{"version": "busy", "weight": 1, "replicas": {"min": 1, "max": 3}}],
    "autoscaling": {"target_in_flight": 2, "scale_up_after_s": 1, "cooldown_s": 3},
}}, "records": {"enabled": False}}


@pytest.fixture(scope="module")
def elastic_mesh(tmp_path_factory):
    root = tmp_path_factory.mktemp("autoscaling")
    models = root / "models"
    write_variant_packages(models, "elastic", ["busy"])
    write_spec(models, SPEC)
    mesh = start_mesh(models, env={"MESHSERVE_AUTOSCALE_INTERVAL_S": "0.5"})
    yield mesh
    mesh.stop()


class Load:
    """Callers that each keep one request in flight; their number can change while they run."""

    def __init__(self, address: str):
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self.callers: list[asyncio.Task] = []
        self.answered = 0
        self.failed: list[str] = []

    async def caller(self):
        message = pb.ModelInferRequest(model_name="elastic")
        message.inputs.add(name="x", datatype="FP32", shape=[1, 1]).contents.fp32_contents.append(1.0)
        while True:
            try:
                await self.stub.ModelInfer(message, timeout=20)
                self.answered += 1
            except grpc.aio.AioRpcError as exc:
                self.failed.append(f"{exc.code().name}: {exc.details()}")

    async def set(self, count: int) -> None:
        while len(self.callers) < count:
            self.callers.append(asyncio.get_running_loop().create_task(self.caller()))
        while len(self.callers) > count:
            # Only between requests' answers would be polite; cancelling one mid-call is the
            # client's own doing and never reaches the mesh as a failure.
            task = self.callers.pop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        await self.set(0)
        await self.channel.close()


def admin_of(mesh) -> EnvoyAdmin:
    return EnvoyAdmin(mesh.wait_for_line(r"admin http://(\S+),", 1).group(1))


async def wait_for_replicas_of(admin: EnvoyAdmin, cluster: str, count: int, timeout: float) -> float:
    """Seconds until Envoy serves CLUSTER with COUNT healthy replicas."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        hosts = await asyncio.to_thread(admin.hosts, cluster)
        if len(hosts) == count and all(flags == "healthy" for flags in hosts.values()):
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"not {count} healthy replicas within {timeout} s: {admin.hosts(cluster)}")


async def wait_for_replicas(admin: EnvoyAdmin, count: int, timeout: float) -> float:
    return await wait_for_replicas_of(admin, "variant|elastic|busy", count, timeout)


def test_replicas_grow_under_a_rising_load_and_shrink_after_it_with_no_failed_request(elastic_mesh):
    admin = admin_of(elastic_mesh)
    assert len(admin.hosts("variant|elastic|busy")) == 1

    async def story():
        load = Load(elastic_mesh.address)
        try:
            await load.set(2)  # at the target: no reason to grow
            await asyncio.sleep(3)
            assert len(admin.hosts("variant|elastic|busy")) == 1
            await load.set(6)
            await load.set(12)
            grown = await wait_for_replicas(admin, 3, timeout=60)
            await asyncio.sleep(2)  # serve a while on three
            await load.set(1)  # a trickle keeps requests in flight while replicas leave
            shrunk = await wait_for_replicas(admin, 1, timeout=60)
            await asyncio.sleep(1)
            return grown, shrunk, load.answered, load.failed
        finally:
            await load.close()

    grown, shrunk, answered, failed = asyncio.run(story())
    print(f"grew to 3 in {grown:.1f} s, back to 1 in {shrunk:.1f} s; {answered} answered, {len(failed)} failed")
    assert not failed, failed[:5]
    assert answered > 100
    scaled = [line for line in elastic_mesh.lines if "scaling elastic:busy" in line]
    assert any("from 1 to" in line for line in scaled) and any("to 1 replicas" in line for line in scaled), scaled
    assert not [line for line in elastic_mesh.lines if "restarting" in line], elastic_mesh.output[-3000:]


@pytest.fixture(scope="module")
def idle_mesh(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale-to-zero")
    models = root / "models"
    write_variant_packages(models, "sleepy", ["1"])
    write_spec(models, {"models": {"sleepy": {
        "variants": [{"version": "1", "weight": 1, "replicas": {"min": 0, "max": 2}}],
        "autoscaling": {"cooldown_s": 2}}}, "records": {"enabled": False}})
    mesh = start_mesh(models, env={"MESHSERVE_AUTOSCALE_INTERVAL_S": "0.5"})
    yield mesh
    mesh.stop()


def infer_sleepy(address: str) -> float:
    """Seconds one request takes, start to answer (it must succeed)."""
    async def one():
        async with grpc.aio.insecure_channel(address) as channel:
            message = pb.ModelInferRequest(model_name="sleepy")
            message.inputs.add(name="x", datatype="FP32", shape=[1, 1]).contents.fp32_contents.append(2.0)
            started = time.monotonic()
            answer = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(message, timeout=60)
            assert answer.model_version == "1"
            return time.monotonic() - started
    return asyncio.run(one())


def test_an_idle_variant_scales_to_zero_and_its_next_request_waits_for_a_cold_start(idle_mesh):
    admin = admin_of(idle_mesh)
    assert admin.hosts("variant|sleepy|1") == {}  # nothing started while nobody asked
    first = infer_sleepy(idle_mesh.address)
    warm = infer_sleepy(idle_mesh.address)
    assert len(admin.hosts("variant|sleepy|1")) == 1
    asyncio.run(wait_for_replicas_of(admin, "variant|sleepy|1", 0, timeout=30))
    again = infer_sleepy(idle_mesh.address)
    print(f"cold start {first:.2f} s, warm {warm:.3f} s, cold start after scaling to zero {again:.2f} s")
    assert warm < first
    scaled = [line for line in idle_mesh.lines if "scaling sleepy:1" in line]
    assert any("from 0 to 1" in line for line in scaled) and any("from 1 to 0" in line for line in scaled), scaled
    assert not [line for line in idle_mesh.lines if "restarting" in line], idle_mesh.output[-3000:]
