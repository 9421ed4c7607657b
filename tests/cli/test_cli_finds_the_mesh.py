"""The records commands (audit, compare, drift, quality, outcomes, explain, records export) ask the
running mesh at its address, as `meshserve rollout` does, and print what they print when they
read its store directly with --store; with neither a mesh nor --store, one line says both ways.

One mesh serves breast-cancer version 1 with version 2 as its shadow; each command runs as a
person runs it (`python -m meshserve.cli ...`), once against the mesh and once with --store.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess

import grpc
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES, free_port, meshserve_argv, start_mesh

pytestmark = pytest.mark.slow

REQUESTS = 60
CLOCK = re.compile(r"\d{2}:\d{2}(:\d{2})?")  # a drift window's clock times move between two runs


def meshserve(*args: str) -> subprocess.CompletedProcess:
    """The command as a person runs it, with no credentials from the environment of the tests."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MESHSERVE_CLIENT_")}
    return subprocess.run(meshserve_argv(*args), capture_output=True, text=True, timeout=300, env=environment)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    """The mesh, after REQUESTS answered predictions (each copied to the shadow) reached its store."""
    folder = tmp_path_factory.mktemp("cli-finds-the-mesh")
    for name in ("breast_cancer", "breast_cancer_v2"):
        (folder / name).symlink_to(EXAMPLES / name, target_is_directory=True)
    (folder / "meshserve.yaml").write_text("models:\n  breast-cancer:\n    variants: [{version: '1', weight: 100}]\n"
                                           "    shadows: [{version: '2', fraction: 1.0}]\n")
    process = start_mesh(folder)
    process.folder = folder
    data = load_breast_cancer()
    try:
        with grpc.insecure_channel(process.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for i in range(REQUESTS):
                request = pb.ModelInferRequest(model_name="breast-cancer", id=f"finds-{i}",
                                               raw_input_contents=[data.data[i:i + 1].tobytes()])
                request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
                stub.ModelInfer(request, timeout=30)
        last = meshserve("audit", f"finds-{REQUESTS - 1}", "--address", process.address, "--wait", "30")
        assert last.returncode == 0, last.stderr
        process.truth = {f"finds-{i}": int(data.target[i]) for i in range(REQUESTS)}
        yield process
    finally:
        process.stop()


def both_ways(mesh, *args: str) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    through_mesh = meshserve(*args, "--address", mesh.address)
    from_store = meshserve(*args, "--store", str(mesh.folder))
    assert through_mesh.returncode == from_store.returncode, (through_mesh.stderr, from_store.stderr)
    return through_mesh, from_store


def test_audit_compare_and_quality_print_the_same_either_way(mesh, reported):
    for args in (("audit", "finds-3"), ("audit", "finds-3", "--json"), ("compare", "breast-cancer"),
                 ("compare", "breast-cancer", "--json", "--min-requests", "10"), ("quality", "breast-cancer"),
                 ("quality", "breast-cancer", "--json", "--window", "15m")):
        through_mesh, from_store = both_ways(mesh, *args)
        assert through_mesh.returncode in (0, 3), through_mesh.stderr
        assert through_mesh.stdout == from_store.stdout, args
        assert "directly, not through a mesh" in from_store.stderr
        assert "directly" not in through_mesh.stderr
    quality = json.loads(meshserve("quality", "breast-cancer", "--json", "--address", mesh.address).stdout)
    assert {(g["version"], g["role"]) for g in quality["groups"]} == {("1", "primary"), ("2", "shadow")}
    assert all(g["requests"] == REQUESTS for g in quality["groups"]), quality


def test_drift_checks_the_same_columns_either_way(mesh):
    through_mesh, from_store = both_ways(mesh, "drift", "breast-cancer", "--json", "--all")
    assert through_mesh.returncode in (0, 3), through_mesh.stderr

    def steady(report: dict) -> str:
        for row in report["columns"]:
            row.pop("checked_at")
        return CLOCK.sub("HH:MM", json.dumps(report, sort_keys=True))

    mesh_report, store_report = json.loads(through_mesh.stdout), json.loads(from_store.stdout)
    assert mesh_report["policy"] == store_report["policy"] and mesh_report["policy"]["min_samples"] > 0
    assert {r["feature"] for r in mesh_report["columns"]} >= {"mean radius", "worst area"}
    assert steady(mesh_report) == steady(store_report)


@pytest.fixture(scope="module")
def reported(mesh, tmp_path_factory):
    """Outcomes of the first half reported through the mesh, of the second half into the store,
    each file with one unknown request id and one malformed row."""
    folder, summaries = tmp_path_factory.mktemp("outcomes"), []
    ids = sorted(mesh.truth, key=lambda r: int(r.split("-")[1]))
    for way, half in (("--address", ids[:REQUESTS // 2]), ("--store", ids[REQUESTS // 2:])):
        path = folder / f"outcomes{way}.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["request_id", "label", "comment"])
            writer.writerows([[r, mesh.truth[r], "x"] for r in half] + [[f"unknown{way}", 1, "x"], ["", 0, "x"]])
        where = mesh.address if way == "--address" else str(mesh.folder)
        result = meshserve("outcomes", str(path), "--model", "breast-cancer", way, where)
        assert result.returncode == 0, result.stderr
        summaries.append(result.stdout)
    return summaries


def test_outcomes_are_summed_up_the_same_either_way(reported):
    through_mesh, from_store = reported
    assert through_mesh == from_store
    assert f"{REQUESTS // 2:,} matched a recorded prediction" in through_mesh
    assert "1 unknown request ids" in through_mesh and "1 malformed rows skipped" in through_mesh
    assert "columns that are no output of the model, ignored: comment" in through_mesh


def test_explain_gives_the_same_attributions_either_way(mesh):
    args = ("explain", "finds-5", "--json", "--background", "20", "--address", mesh.address)
    through_mesh = meshserve(*args)
    from_store = meshserve(*args, "--store", str(mesh.folder))  # scored through the mesh all the same
    assert through_mesh.returncode == 0 and from_store.returncode == 0, (through_mesh.stderr, from_store.stderr)
    mesh_result, store_result = json.loads(through_mesh.stdout), json.loads(from_store.stdout)
    for key in ("output", "value", "background_rows", "attributions"):
        assert mesh_result[key] == store_result[key], key
    assert len(mesh_result["attributions"]) == 30
    audited = json.loads(meshserve("audit", "finds-5", "--json", "--address", mesh.address).stdout)
    assert audited[0]["explanation"]["attributions"] == store_result["attributions"]  # stored with the record
    refused = meshserve("explain", "no-such-request", "--address", mesh.address)
    assert refused.returncode == 1 and refused.stderr.strip() == "meshserve: cannot explain no-such-request: no " \
                                                                   "record of request no-such-request"


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_records_export_writes_the_same_file_either_way(mesh, tmp_path, suffix):
    files, said = [], []
    for way, where in (("--address", mesh.address), ("--store", str(mesh.folder))):
        path = tmp_path / f"{way.strip('-')}.{suffix}"
        result = meshserve("records", "export", "--model", "breast-cancer", "--version", "1", "-o", str(path), way,
                           where)
        assert result.returncode == 0, result.stderr
        said.append(result.stdout.replace(str(path), "FILE"))
        files.append(path)
    assert said[0] == said[1] and said[0].startswith("wrote ")
    assert int(said[0].split()[1].replace(",", "")) >= REQUESTS
    if suffix == "parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(files[0]).equals(pq.read_table(files[1]))
    else:
        assert files[0].read_bytes() == files[1].read_bytes()


def test_export_streams_in_pages_of_the_size_asked(mesh):
    from meshserve.v1 import control_pb2 as cpb
    from meshserve.v1 import control_pb2_grpc as cpb_grpc

    with grpc.insecure_channel(mesh.address) as channel:
        pages = list(cpb_grpc.ControlStub(channel).ExportRecords(
            cpb.ExportRecordsRequest(model="breast-cancer", version="1", page_size=7), timeout=60))
        with pytest.raises(grpc.RpcError) as refused:
            list(cpb_grpc.ControlStub(channel).ExportRecords(
                cpb.ExportRecordsRequest(model="breast-cancer", role="boss"), timeout=60))
    sizes = [len(p.records) for p in pages]
    assert set(sizes[:-1]) == {7} and 0 < sizes[-1] <= 7, sizes
    assert pages[0].total == sum(sizes) and all(p.total == 0 for p in pages[1:])
    ids = [r.request_id for p in pages for r in p.records]
    assert len(set(ids)) == len(ids) and {f"finds-{i}" for i in range(REQUESTS)} <= set(ids)
    assert [r.time for p in pages for r in p.records] == sorted(r.time for p in pages for r in p.records)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "role 'boss'" in refused.value.details()


@pytest.mark.parametrize("command", [("audit", "x", "--wait", "0"), ("compare", "breast-cancer"),
                                     ("drift", "breast-cancer"), ("quality", "breast-cancer"),
                                     ("explain", "x"), ("records", "export", "--model", "m", "-o", "out.csv")])
def test_with_no_mesh_and_no_store_one_line_says_both_ways(tmp_path, command):
    nowhere = f"127.0.0.1:{free_port()}"
    refused = meshserve(*command, "--address", nowhere)
    assert refused.returncode == 2, refused.stdout
    assert refused.stderr == (f"meshserve: no mesh answers at {nowhere} and no --store was given: start the mesh "
                              "(`meshserve up DIR`) or give the address it listens on (--address HOST:PORT), or read "
                              "its records store directly (--store FOLDER, sqlite:///PATH or postgresql://...)\n")


def test_outcomes_with_no_mesh_and_no_store_says_both_ways_too(tmp_path):
    path = tmp_path / "outcomes.csv"
    path.write_text("request_id,label\nr1,1\n")
    refused = meshserve("outcomes", str(path), "--address", f"127.0.0.1:{free_port()}")
    assert refused.returncode == 2 and "no --store was given" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
