"""Comparing versions on live traffic: shadows pair by pair with their primary, a canary as a
distribution beside it, from the records of a real mesh."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml
from sklearn.datasets import load_breast_cancer
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES, meshserve_argv, start_mesh
from meshserve.sidecars.records.store import open_store

pytestmark = pytest.mark.slow

REQUESTS = 600

WRAPPER = textwrap.dedent('''
    """breast-cancer version 1's estimator, its labels flipped where FLIP says so."""
    from pathlib import Path

    import joblib
    import numpy as np

    MODEL = joblib.load(Path(__file__).with_name("model.joblib"))
    FLIP_EVERY = {flip_every}  # 0: never


    def flipped(features):
        return (np.floor(features[:, 0] * 100).astype(np.int64) % 5 == 0) if FLIP_EVERY else np.zeros(len(features), bool)


    def predict(inputs):
        features = inputs["features"]
        label = MODEL.predict(features)
        label = np.where(flipped(features), 1 - label, label)
        return {{"label": label.astype(np.int64), "probabilities": MODEL.predict_proba(features)}}
''')


def write_wrapper(root: Path, version: str, flip: bool) -> None:
    package = root / f"breast_cancer_v{version}"
    package.mkdir()
    shutil.copy(EXAMPLES / "breast_cancer" / "model.joblib", package / "model.joblib")
    (package / "wrapper.py").write_text(WRAPPER.format(flip_every=5 if flip else 0))
    manifest = yaml.safe_load((EXAMPLES / "breast_cancer" / "model.yaml").read_text())
    manifest.update(version=version, entrypoint="wrapper:predict", description=f"v1 {'flipping' if flip else 'copy'}")
    manifest.pop("python", None)
    manifest.pop("environment", None)
    manifest.pop("baseline", None)  # the baseline file is not copied
    manifest.pop("golden", None)
    (package / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def request_for(request_id: str, row: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="breast-cancer", id=request_id,
                                   raw_input_contents=[np.ascontiguousarray(row[None, :]).tobytes()])
    request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    return request


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    models = tmp_path_factory.mktemp("compare")
    (models / "breast_cancer").symlink_to(EXAMPLES / "breast_cancer", target_is_directory=True)
    (models / "breast_cancer_v2").symlink_to(EXAMPLES / "breast_cancer_v2", target_is_directory=True)
    write_wrapper(models, "3", flip=False)
    write_wrapper(models, "4", flip=True)
    (models / "meshserve.yaml").write_text(yaml.safe_dump({"models": {"breast-cancer": {
        "variants": [{"version": "1", "weight": 80}, {"version": "2", "weight": 20}],
        "shadows": [{"version": "3", "fraction": 1.0}, {"version": "4", "fraction": 1.0}]}}}))
    data = load_breast_cancer().data
    # Exactly one request in five carries a row the flipping copy flips.
    flips = np.floor(data[:, 0] * 100).astype(np.int64) % 5 == 0
    flipped, kept = data[flips], data[~flips]
    rows = [flipped[(i // 5) % len(flipped)] if i % 5 == 0 else kept[i % len(kept)] for i in range(REQUESTS)]
    mesh = start_mesh(models)
    try:
        with grpc.insecure_channel(mesh.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: stub.ModelInfer(request_for(f"cmp-{i}", rows[i]), timeout=30),
                              range(REQUESTS)))
        store = open_store(str(models))
        deadline = time.monotonic() + 60
        while store.count("breast-cancer") < 3 * REQUESTS and time.monotonic() < deadline:
            time.sleep(0.3)
        store.close()
    finally:
        mesh.stop()
    return models, np.asarray(rows)


def test_shadows_are_compared_with_their_primary_pair_by_pair(compared, tmp_path):
    models, rows = compared
    report_path = tmp_path / "compare.html"
    result = subprocess.run(meshserve_argv("compare", "breast-cancer", "--store", str(models), "--json",
                                           "--html", str(report_path)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    everything = {(entry["version"], entry["primary_version"]): entry for entry in report["shadows"]}
    assert set(everything) == {("3", "1"), ("3", "2"), ("4", "1"), ("4", "2")}, "each shadow beside each answerer"
    shadows = {version: everything[(version, "1")] for version in ("3", "4")}
    same = shadows["3"]["outputs"]["label"]
    assert same["agreement"] == 1.0 and same["pairs"] == shadows["3"]["both_answered"] > 0
    flipping = shadows["4"]["outputs"]["label"]
    low, high = flipping["interval"]
    assert low <= 0.8 <= high and abs(flipping["agreement"] - 0.8) < 0.06, flipping
    assert flipping["pairs"] == shadows["4"]["both_answered"]
    assert sum(map(sum, flipping["confusion"])) == flipping["pairs"]
    assert shadows["3"]["outputs"]["probabilities"]["kind"] == "numeric"
    assert shadows["3"]["errors"]["shadow"]["error_rate"] == 0.0
    assert shadows["3"]["latency_ms"]["shadow"]["p99"] > 0
    [canary] = report["canaries"]
    assert canary["version"] == "2" and 0 < canary["requests"] < canary["primary_requests"]
    assert 0.0 <= canary["outputs"]["label"]["jensen_shannon"] < 0.2
    assert "<svg" in report_path.read_text()
    text = subprocess.run(meshserve_argv("compare", "breast-cancer", "--store", str(models)), capture_output=True,
                          text=True, timeout=120).stdout
    assert "shadow version 4 against primary 1" in text and "agreement" in text and "canary version 2" in text


def test_a_flipping_shadow_agrees_exactly_where_its_rule_says(compared):
    """Paired on version 1's answers alone, the flipping copy disagrees on exactly the rows it flips."""
    models, rows = compared
    store = open_store(str(models))
    try:
        pairs = [(p, s) for p, s in store.shadow_pairs("breast-cancer") if s["version"] == "4" and p["version"] == "1"]
    finally:
        store.close()
    from meshserve.sidecars.compare.comparison import compare_shadow

    [entry] = compare_shadow(pairs)
    features = np.asarray([p["inputs"]["features"]["values"][0] for p, _ in pairs])
    expected = 1 - (np.floor(features[:, 0] * 100).astype(np.int64) % 5 == 0).mean()
    assert entry["outputs"]["label"]["agreement"] == pytest.approx(expected)
    low, high = entry["outputs"]["label"]["interval"]
    assert low < expected < high


def test_shadow_agreement_and_pair_counts_are_published_as_metrics(compared):
    """The router's judging metrics carry the same figures as `meshserve compare`."""
    from prometheus_client import REGISTRY

    from meshserve.observability.judging_metrics import publish
    from meshserve.sidecars.compare.comparison import compare

    models, _ = compared
    store = open_store(str(models))
    try:
        report = compare(store, "breast-cancer")
    finally:
        store.close()
    publish("breast-cancer", report, {"groups": []})
    labels = {"model": "breast-cancer", "version": "4", "primary_version": "1"}
    entry = next(e for e in report["shadows"] if e["version"] == "4" and e["primary_version"] == "1")
    assert REGISTRY.get_sample_value("meshserve_shadow_pairs", labels) == entry["pairs"]
    assert REGISTRY.get_sample_value("meshserve_shadow_agreement", labels | {"output": "label"}) == \
        entry["outputs"]["label"]["agreement"]
    assert REGISTRY.get_sample_value("meshserve_shadow_abs_difference",
                                     labels | {"output": "probabilities", "quantile": "p99"}) is not None
