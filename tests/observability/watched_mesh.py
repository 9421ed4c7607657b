"""One traced, measured mesh for the tests that watch a whole mesh (imported by their module).

Models: breast-cancer as a canary split (1 at 70, 2 at 30) with version 3 shadowing every
request, each declaring a range for `mean radius`; and one model of each other world (an R
random forest, a Java Weka tree, a Triton model) when this machine can run it. Every process
exports spans to an OTLP receiver inside the test and serves Prometheus metrics.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml
from conftest import EXAMPLES, ROOT, start_mesh
from otlp_receiver import OtlpReceiver
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

SPLIT = {"1": 70, "2": 30}
SHADOW = "3"
MEAN_RADIUS_RANGE = [5.0, 30.0]


def _breast_cancer_version(root: Path, version: str, source: Path) -> None:
    package = root / f"breast_cancer_{version}"
    package.mkdir()
    (package / "model.joblib").symlink_to(source / "model.joblib")
    for shared in ("baseline.json", "golden.json"):
        if (source / shared).exists():
            (package / shared).symlink_to(source / shared)
    manifest = yaml.safe_load((source / "model.yaml").read_text())
    manifest["version"] = version
    manifest["signature"]["inputs"][0]["limits"] = {"mean radius": {"range": MEAN_RADIUS_RANGE}}
    (package / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def other_worlds() -> dict[str, str]:
    """Example folder -> runtime, for the worlds this machine can run."""
    worlds = {}
    if shutil.which("Rscript") and (EXAMPLES / "r_iris_randomforest" / "model.rds").exists():
        worlds["r_iris_randomforest"] = "r"
    try:
        import jpype  # noqa: F401
        if (EXAMPLES / "java_weka_j48" / "j48.model").exists():
            worlds["java_weka_j48"] = "java"
    except ImportError:
        pass
    from meshserve.adapters.triton.triton_env import triton_environment

    if triton_environment() is not None and \
            (EXAMPLES / "triton_digits" / "model_repository" / "digits_mlp" / "1" / "weights.npz").exists():
        worlds["triton_digits"] = "triton"
    return worlds


@pytest.fixture(scope="module")
def otlp() -> OtlpReceiver:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def observed_mesh(tmp_path_factory, otlp):
    root = tmp_path_factory.mktemp("observed-models")
    for version, source in (("1", "breast_cancer"), ("2", "breast_cancer_v2"), (SHADOW, "breast_cancer_v2")):
        _breast_cancer_version(root, version, EXAMPLES / source)
    worlds = other_worlds()
    for folder in worlds:
        (root / folder).symlink_to(EXAMPLES / folder, target_is_directory=True)
    (root / "meshserve.yaml").write_text(yaml.safe_dump({"models": {"breast-cancer": {
        "variants": [{"version": v, "weight": w} for v, w in SPLIT.items()],
        "shadows": [{"version": SHADOW, "fraction": 1.0}]}}}))
    run_dir = tmp_path_factory.mktemp("observed-run")
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
           "OTEL_BSP_SCHEDULE_DELAY": "100", "MESHSERVE_FEATURE_STATISTICS_INTERVAL_S": "0.2"}
    mesh = start_mesh(root, "--run-dir", str(run_dir), env=env, timeout=240)
    mesh.run_dir = run_dir
    mesh.worlds = worlds
    yield mesh
    mesh.stop()


@pytest.fixture(scope="module")
def front(observed_mesh):
    channel = grpc.insecure_channel(observed_mesh.address)
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def tensor_request(model: str, name: str, rows: np.ndarray, datatype: str) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(
        model_name=model, inputs=[pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype,
                                                                       shape=list(rows.shape))],
        raw_input_contents=[rows.tobytes()])


def breast_cancer_request(rows: np.ndarray) -> pb.ModelInferRequest:
    return tensor_request("breast-cancer", "features", rows.astype(np.float64), "FP64")


def trailers(call) -> dict[str, str]:
    return {k: v for k, v in call.trailing_metadata() or ()}



@pytest.fixture(scope="module")
def prometheus(observed_mesh, tmp_path_factory):
    from prometheus_server import PrometheusServer, prometheus_binary
    if prometheus_binary() is None:
        pytest.skip("Prometheus is not installed (scripts/setup.d/60-prometheus.sh installs Debian's package)")
    server = PrometheusServer(observed_mesh.run_dir / "prometheus-targets.json", tmp_path_factory.mktemp("prometheus"),
                              rule_files=sorted((ROOT / "compose" / "prometheus").glob("*-alerts.yml")))
    targets = len(yaml.safe_load((observed_mesh.run_dir / "prometheus-targets.json").read_text()))
    # Its first scrape lands about 5 s after it starts.
    server.wait_until(lambda: server.scalar("count(up == 1)") == targets, timeout=30, what="every target up")
    yield server
    server.stop()
