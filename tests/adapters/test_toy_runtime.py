"""A model world added from outside meshserve: one table row, given by an installed distribution's
`meshserve.runtimes` entry point, and nothing else changed.

The toy world (tests/adapters/toy_runtime/) multiplies its inputs by `toy.factor`. Here it is
"installed" as pip would install it: a dist-info folder declaring `toy = toy_runtime:ROW`, on the
Python path of this process and of the adapter process the test starts. meshserve then reads its
manifests, sizes its replicas, renders its pods, describes its environment and serves it from the
toy's own classes.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import yaml
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import ROOT
from meshserve.cli.commands.package import summary
from meshserve.core import runtimes
from meshserve.core.errors import ManifestError
from meshserve.core.model_package import load_package
from meshserve.core.replica_slots import replica_slots
from meshserve.kubernetes.resources import adapter_resources, adapter_startup_s, needs_gpu

TOY_PARENT = ROOT / "tests" / "adapters"  # holds the toy_runtime package


def install_toy(site) -> None:
    """What `pip install` of a distribution declaring the toy's entry point leaves on disk."""
    info = site / "toy_runtime-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-runtime\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{runtimes.ENTRY_POINT_GROUP}]\ntoy = toy_runtime:ROW\n")


def write_package(root, factor: float = 3.0, lanes: int = 5):
    root.mkdir()
    spec = {"name": "tripler", "datatype": "FP64", "shape": [-1, 2]}
    (root / "model.yaml").write_text(yaml.safe_dump({
        "name": "tripler", "version": "1", "runtime": "toy",
        "signature": {"inputs": [dict(spec)], "outputs": [dict(spec)]},
        "toy": {"factor": factor, "lanes": lanes}}))
    return root


@pytest.fixture
def toy_installed(tmp_path, monkeypatch):
    """The toy distribution installed for this process: the table is read again on both sides."""
    install_toy(tmp_path / "site")
    monkeypatch.syspath_prepend(str(TOY_PARENT))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    runtimes._installed.cache_clear()  # the installed rows are read once per process
    yield {"PYTHONPATH": f"{tmp_path / 'site'}:{TOY_PARENT}"}
    monkeypatch.undo()
    runtimes._installed.cache_clear()


def test_without_its_row_a_toy_package_is_refused_naming_how_to_add_one(tmp_path):
    package = write_package(tmp_path / "tripler")
    with pytest.raises(ManifestError) as refused:
        load_package(package)
    assert "unknown runtime 'toy'" in str(refused.value)
    assert runtimes.ENTRY_POINT_GROUP in str(refused.value)


def test_the_installed_row_gives_the_toy_worlds_facts_to_every_part(tmp_path, toy_installed):
    package = load_package(write_package(tmp_path / "tripler", lanes=5))
    assert runtimes.runtime_names()[-1] == "toy"
    assert type(package.options).__name__ == "ToyOptions" and package.options.factor == 3.0
    assert replica_slots(package.manifest) == 5  # Envoy's limits
    assert adapter_resources("toy") == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
    assert adapter_startup_s("toy") == 10 and not needs_gpu("toy")
    assert summary({"toy": {"version": "7"}, "captured_at": "now"}) == ["toy world 7"]
    assert not package.options.config_from_server  # the router describes it from model.yaml


def test_the_toy_runtimes_own_checks_run_when_its_package_loads(tmp_path, toy_installed):
    package = write_package(tmp_path / "tripler")
    manifest = yaml.safe_load((package / "model.yaml").read_text())
    manifest["signature"]["outputs"][0]["name"] = "other"
    (package / "model.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(ManifestError, match="answers each input under the same name"):
        load_package(package)


def test_an_adapter_process_serves_the_toy_world_end_to_end(tmp_path, toy_installed, adapter_factory):
    adapter = adapter_factory(write_package(tmp_path / "tripler", factor=3.0), env=toy_installed, timeout=60)
    rows = np.array([[1.0, 2.0], [-0.5, 10.0]])
    request = pb.ModelInferRequest(model_name="tripler", raw_input_contents=[rows.tobytes()])
    request.inputs.add(name="tripler", datatype="FP64", shape=list(rows.shape))
    with grpc.insecure_channel(adapter.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        answer = stub.ModelInfer(request, timeout=30)
        metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="tripler"), timeout=30)
    assert [o.name for o in answer.outputs] == ["tripler"]
    np.testing.assert_array_equal(np.frombuffer(answer.raw_output_contents[0]).reshape(2, 2), rows * 3.0)
    assert metadata.platform == "meshserve_toy"
