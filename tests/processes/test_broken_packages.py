"""One broken package does not stop a mesh from serving the others; --strict refuses it all."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import tritonclient.grpc as triton
import yaml

from conftest import EXAMPLES, meshserve_argv, start_mesh

pytestmark = pytest.mark.slow


@pytest.fixture
def models(tmp_path):
    (tmp_path / "iris").symlink_to(EXAMPLES / "iris_species", target_is_directory=True)
    shutil.copytree(EXAMPLES / "breast_cancer", tmp_path / "cancer", ignore=shutil.ignore_patterns("__pycache__"))
    manifest = yaml.safe_load((tmp_path / "cancer" / "model.yaml").read_text())
    manifest["runtime"] = "julia"
    (tmp_path / "cancer" / "model.yaml").write_text(yaml.safe_dump(manifest))
    return tmp_path


def test_the_good_packages_are_served_and_the_broken_one_is_named_with_its_reason(models):
    mesh = start_mesh(models)
    try:
        assert "not serving breast-cancer" in mesh.output and "field 'runtime'" in mesh.output
        assert "NOT serving 1 broken package" in mesh.output
        client = triton.InferenceServerClient(mesh.address)
        rows = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
        tensor = triton.InferInput("measurements", rows.shape, "FP32")
        tensor.set_data_from_numpy(rows)
        assert client.infer("iris-species", [tensor]).as_numpy("species").tolist() == [b"setosa"]
        assert not client.is_model_ready("breast-cancer")
    finally:
        mesh.stop()


def test_strict_refuses_to_start_with_a_broken_package(models):
    result = subprocess.run(meshserve_argv("up", str(models), "--listen", "127.0.0.1:0", "--strict"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "field 'runtime'" in result.stderr and "adapter ready" not in result.stdout
