"""A client in another language: Node.js with @grpc/grpc-js and the project's own .proto files."""

import json
import shutil
import subprocess

import pytest

from conftest import ROOT

NODE_DIR = ROOT / "tests" / "node"


@pytest.fixture(scope="module")
def node():
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        pytest.skip("Node.js or its gRPC packages are missing: run `bash scripts/setup.sh`")
    return node


def test_node_client_calls_model_infer_from_the_projects_proto(node, python_mesh):
    result = subprocess.run([node, str(NODE_DIR / "infer.js"), python_mesh.address],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["live"] is True
    assert answer["inputs"] == [{"name": "measurements", "datatype": "FP32", "shape": [-1, 4]}]
    assert answer["id"] == "node-typed" and answer["model_version"] == "1"
    assert answer["species"] == ["setosa", "virginica"]
    assert answer["raw_outputs"] == ["distance"]
    assert answer["raw_distance"] == pytest.approx(0.1413, abs=1e-3)
    assert answer["invalid"]["code"] == 3  # INVALID_ARGUMENT
    assert "shape [1, 3] but the model takes [-1, 4]" in answer["invalid"]["details"]
