"""NaN through a real adapter (gRPC servicer over the real Java and Python runtimes): refused by
default with INVALID_ARGUMENT naming the input, before the model sees it; scored when model.yaml's
`input_policy` allows it."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml
from conftest import ROOT
from java_oracle import LOAN_DIR, NOT_BUILT, java_examples_built
from meshserve.adapters.dataplane import ModelService
from meshserve.adapters.server import AdapterInferenceServicer
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from meshserve.core.model_package import load_package

IRIS_DIR = ROOT / "examples" / "iris_species"
LOOP = asyncio.new_event_loop()  # the JVM and the runtimes stay on one loop for the module


def needs_java():
    if not java_examples_built():
        pytest.skip(NOT_BUILT)
    pytest.importorskip("jpype", reason="jpype1 is not installed (pip install -e .[java])")


def needs_iris():
    if not (IRIS_DIR / "centroids.npz").exists():
        pytest.skip("the iris example is not trained: run scripts/setup.sh")


WORLDS = {
    # world: (package, input, datatype, a good row with a NaN in column 1, prerequisite)
    "java": (LOAN_DIR, "applicant", "FP64", [52.0, np.nan, 41.0, 0.0], needs_java),
    "python": (IRIS_DIR, "measurements", "FP32", [5.1, np.nan, 1.4, 0.2], needs_iris),
}


def copy_with_policy(source: Path, tmp_path: Path, policy: dict | None) -> Path:
    folder = tmp_path / source.name
    shutil.copytree(source, folder, symlinks=True)
    if policy is not None:
        manifest = yaml.safe_load((folder / "model.yaml").read_text())
        manifest["input_policy"] = policy
        (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


async def infer_through_adapter(folder: Path, name: str, datatype: str, row: list[float]):
    package = load_package(folder)
    service = await ModelService.start(package)
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(AdapterInferenceServicer(service), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    array = np.array([row], dtype=np.float32 if datatype == "FP32" else np.float64)
    request = pb.ModelInferRequest(model_name=package.name, raw_input_contents=[array.tobytes()])
    request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            return await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    finally:
        await server.stop(0)
        await service.close()


@pytest.mark.parametrize("world", list(WORLDS))
def test_nan_is_refused_by_default_naming_the_input(tmp_path, world):
    source, name, datatype, row, prerequisite = WORLDS[world]
    prerequisite()
    folder = copy_with_policy(source, tmp_path, None)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        LOOP.run_until_complete(infer_through_adapter(folder, name, datatype, row))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(f"input '{name}': column ")
    assert "row 0 is NaN" in caught.value.details()


def test_nan_reaches_the_java_model_when_its_input_policy_allows_it(tmp_path):
    source, name, datatype, row, prerequisite = WORLDS["java"]
    prerequisite()
    folder = copy_with_policy(source, tmp_path, {"nan": "allow"})
    # The scorecard checks its own inputs: its refusal of the NaN shows the value reached Java.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        LOOP.run_until_complete(infer_through_adapter(folder, name, datatype, row))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "java.lang.IllegalArgumentException: row 0: debt_ratio must be >= 0, got NaN" in caught.value.details()
    scored = LOOP.run_until_complete(infer_through_adapter(folder, name, datatype, [52.0, 0.3, 41.0, np.nan]))
    assert [o.name for o in scored.outputs] == ["default_probability", "risk_band"]


def test_nan_reaches_the_python_model_when_its_input_policy_allows_it(tmp_path):
    source, name, datatype, row, prerequisite = WORLDS["python"]
    prerequisite()
    folder = copy_with_policy(source, tmp_path, {"nan": "allow"})
    response = LOOP.run_until_complete(infer_through_adapter(folder, name, datatype, row))
    distance = next(i for i, o in enumerate(response.outputs) if o.name == "distance")
    assert np.isnan(np.frombuffer(response.raw_output_contents[distance], dtype=np.float32)).all()
