"""Records in PostgreSQL: two meshes on one machine write into one real PostgreSQL server,
and audit and export read them back from it."""

from __future__ import annotations

import subprocess
import time

import grpc
import numpy as np
import pyarrow.parquet as pq
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES, meshserve_argv, start_mesh
from meshserve.sidecars.records.store import open_store
from postgres_server import PostgresServer, postgres_bin

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres():
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed here (scripts/setup.d/60-records.sh installs it)")
    server = PostgresServer().start()
    yield server
    server.stop()


def iris_request(request_id: str) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris-species", id=request_id,
                                   raw_input_contents=[np.array([[6.3, 3.3, 6.0, 2.5]], np.float32).tobytes()])
    request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
    return request


def test_two_meshes_record_into_one_postgresql_and_audit_and_export_read_it(postgres, tmp_path):
    meshes = []
    for name in ("east", "west"):
        models = tmp_path / name
        models.mkdir()
        (models / "iris").symlink_to(EXAMPLES / "iris_species", target_is_directory=True)
        (models / "meshserve.yaml").write_text(f"records: {{store: '{postgres.url}'}}\n")
        meshes.append(start_mesh(models, "--no-envoy"))
    try:
        for mesh in meshes:
            assert "recording every inference to postgresql://" in mesh.output
        for index, mesh in enumerate(meshes):
            with grpc.insecure_channel(mesh.address) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                for i in range(20):
                    assert stub.ModelInfer(iris_request(f"pg-{index}-{i}"), timeout=30).model_name == "iris-species"
        store = open_store(postgres.url)
        deadline = time.monotonic() + 30
        while store.count("iris-species") < 40 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert store.count("iris-species") == 40
        store.close()
        audit = subprocess.run(meshserve_argv("audit", "pg-1-7", "--store", postgres.url), capture_output=True,
                               text=True, timeout=60)
        assert audit.returncode == 0, audit.stderr
        assert "model iris-species version 1" in audit.stdout and "virginica" in audit.stdout
        out = tmp_path / "iris.parquet"
        export = subprocess.run(meshserve_argv("records", "export", "--model", "iris-species", "--store", postgres.url,
                                               "-o", str(out)), capture_output=True, text=True, timeout=60)
        assert export.returncode == 0, export.stderr
        table = pq.read_table(out)
        assert table.num_rows == 40
        assert set(table.column("species").to_pylist()) == {"virginica"}
        assert table.column("petal length (cm)").to_pylist()[0] == pytest.approx(6.0)
    finally:
        for mesh in meshes:
            mesh.stop()
