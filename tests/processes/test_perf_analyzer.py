"""Triton's perf_analyzer measures every bundled example through the mesh, as it would a Triton.

It reads ModelMetadata and ModelConfig to build its requests, ModelStatistics for the server's
share of the time, and exits non-zero on any failure. Its default input data is random bytes
(NaN, infinities, 1e300), which the models' input policies refuse by design, so the measured
runs pass one real row per model (`--input-data`), and one run checks the refusal is a plain
INVALID_ARGUMENT message.
"""

from __future__ import annotations

import re

import pytest
from sklearn.datasets import load_breast_cancer, load_digits

import perf_analyzer
from conftest import EXAMPLES, start_mesh

pytestmark = pytest.mark.skipif(not perf_analyzer.installed(), reason=perf_analyzer.MISSING)

IRIS = [5.1, 3.5, 1.4, 0.2]
# One real row per example: input -> content and shape without the batch dimension.
ROWS = {
    "breast-cancer": {"features": {"content": load_breast_cancer().data[0].tolist(), "shape": [30]}},
    "iris-species": {"measurements": {"content": IRIS, "shape": [4]}},
    "digits-triton": {"pixels": {"content": load_digits().data[0].tolist(), "shape": [64]}},
    "infert-glm": {"education": {"content": ["6-11yrs"], "shape": [1]}, "age": {"content": [26.0], "shape": [1]},
                   "parity": {"content": [6], "shape": [1]}, "history": {"content": [1.0, 1.0], "shape": [2]}},
    "iris-randomforest": {"measurements": {"content": IRIS, "shape": [4]}},
    "iris_j48": {"measurements": {"content": IRIS, "shape": [4]}},
    "loan_default": {"applicant": {"content": [55.0, 0.3, 40.0, 1.0], "shape": [4]}},
}


@pytest.fixture(scope="module")
def mesh():
    process = start_mesh(EXAMPLES, timeout=300)
    yield process
    process.stop()


def measure(mesh, model: str, tmp_path, *extra: str):
    data = perf_analyzer.input_data(tmp_path / f"{model}.json", ROWS[model])
    return perf_analyzer.run("-m", model, "-u", mesh.address, "-i", "grpc", "--input-data", str(data),
                             *perf_analyzer.QUICK, *extra)


@pytest.mark.parametrize("model", sorted(ROWS))
def test_perf_analyzer_measures_every_example_with_its_batches(mesh, model, tmp_path):
    # Every example takes rows along a leading -1, micro-batched or not, so ModelConfig gives it
    # a batch dimension and perf_analyzer sends -b rows per request.
    result = measure(mesh, model, tmp_path, "-b", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Batch size: 4" in result.stdout and perf_analyzer.throughput(result.stdout) > 0
    assert "Server:" in result.stdout and "Inference count:" in result.stdout  # it read ModelStatistics


def test_collect_metrics_reads_the_routers_metrics_endpoint(mesh, tmp_path):
    # perf_analyzer looks for Triton's GPU metrics (nv_gpu_*); a CPU mesh has none, which it
    # reports as warnings and carries on.
    url = re.search(r"metrics meshserve-router: (\S+)", mesh.output).group(1)
    result = measure(mesh, "iris-species", tmp_path, "--collect-metrics", "--metrics-url", url,
                     "--metrics-interval", "200")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Server Prometheus Metrics" in result.stdout and perf_analyzer.throughput(result.stdout) > 0


def test_random_data_is_refused_with_a_plain_message(mesh):
    result = perf_analyzer.run("-m", "breast-cancer", "-u", mesh.address, "-i", "grpc", *perf_analyzer.QUICK)
    assert result.returncode != 0
    assert "input 'features'" in result.stdout + result.stderr and "input_policy" in result.stdout + result.stderr


def test_system_shared_memory_is_refused_as_unimplemented(mesh, tmp_path):
    result = measure(mesh, "breast-cancer", tmp_path, "--shared-memory", "system")
    assert result.returncode != 0
    assert "meshserve serves no system shared memory" in result.stdout + result.stderr
