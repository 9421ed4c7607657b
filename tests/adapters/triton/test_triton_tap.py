"""One hop to Triton: Envoy sends stock clients straight to Triton's gRPC port, and the Triton
adapter still records every request from the side tap (Envoy's ext_proc in observability mode).

Stories: Triton answers the mesh's model name and version itself, exactly as the adapter does;
each request through Envoy leaves exactly one prediction record with its request id, role, inputs
and outputs; a request Triton refuses is recorded with Triton's status; and a tap that stops
reading neither fails nor slows a single request.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, RunningProcess, free_port, meshserve_argv  # noqa: E402

from meshserve.adapters.triton.triton_env import not_installed_message, triton_environment  # noqa: E402

if triton_environment() is None:
    print(f"test_triton_tap skipped: {not_installed_message()}")
    pytest.skip(not_installed_message(), allow_module_level=True)

import tritonclient.grpc as triton_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from meshserve.envoy.layout import BOOTSTRAP_FILE  # noqa: E402
from meshserve.envoy.process import EnvoyProcess  # noqa: E402
from meshserve.sidecars.records.spool import read_frames, spool_files  # noqa: E402

EXAMPLE = ROOT / "examples" / "triton_digits"
MODEL, VERSION = "digits-triton", "1"
ROLE = "canary"  # what the route stamps, so the record's role is seen to come from Envoy's header


def cluster(name: str, port: int, **extra) -> dict:
    return {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
        **extra,
    }


def bootstrap(front: int, admin: int, triton: int, tap: int) -> dict:
    """One listener routing everything to Triton, with the side tap as the mesh would configure it."""
    header = lambda key, value: {"header": {"key": key, "value": value}}  # noqa: E731
    ext_proc = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
        "grpc_service": {"envoy_grpc": {"cluster_name": "tap"}, "timeout": "1s"},
        "observability_mode": True,
        "failure_mode_allow": True,
        "processing_mode": {"request_header_mode": "SEND", "response_header_mode": "SEND",
                            "request_body_mode": "STREAMED", "response_body_mode": "STREAMED",
                            "request_trailer_mode": "SKIP", "response_trailer_mode": "SEND"},
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "front", "codec_type": "AUTO",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
            "match": {"prefix": "/"}, "route": {"cluster": "triton", "timeout": "30s"},
            "request_headers_to_add": [header("x-meshserve-model", MODEL), header("x-meshserve-version", VERSION)],
            "response_headers_to_add": [header("x-meshserve-variant", f"{VERSION} {ROLE}")]}]}]},
        "http_filters": [
            {"name": "envoy.filters.http.ext_proc", "typed_config": ext_proc},
            {"name": "envoy.filters.http.router",
             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{"name": "front", "address": {"socket_address": {"address": "127.0.0.1", "port_value": front}},
                           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                           "typed_config": manager}]}]}],
            "clusters": [cluster("triton", triton),
                         # Each tap stream stays open a while; the default 1024 drops streams under load.
                         cluster("tap", tap, circuit_breakers={"thresholds": [{"max_requests": 100000}]})],
        },
    }


@pytest.fixture(scope="module")
def one_hop(tmp_path_factory):
    """A Triton adapter with records and the tap, and an Envoy in front of its Triton."""
    if not (EXAMPLE / "model_repository" / "digits_mlp" / "1" / "weights.npz").exists():
        subprocess.run([sys.executable, str(EXAMPLE / "train.py")], check=True, capture_output=True)
    folder = tmp_path_factory.mktemp("one-hop")
    triton_port, tap_port, front_port, admin_port = (free_port() for _ in range(4))
    endpoint_file = folder / "triton-endpoint.json"
    adapter_address, tap_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{tap_port}"
    adapter = RunningProcess(
        meshserve_argv("adapter", str(EXAMPLE), "--listen", adapter_address, "--tap-listen", tap_address),
        env={"MESHSERVE_RECORDS_DIR": str(folder / "records"), "MESHSERVE_TRITON_GRPC_PORT": str(triton_port),
             "MESHSERVE_TRITON_ENDPOINT_FILE": str(endpoint_file)})
    envoy = None
    try:
        adapter.wait_for_line(r"meshserve adapter ready", 180)
        adapter.address = adapter_address
        run_dir = folder / "envoy"
        run_dir.mkdir()
        (run_dir / BOOTSTRAP_FILE).write_text(yaml.safe_dump(bootstrap(front_port, admin_port, triton_port, tap_port)))
        envoy = EnvoyProcess(run_dir, f"127.0.0.1:{admin_port}", concurrency=1).start()
        yield {"adapter": adapter, "front": f"127.0.0.1:{front_port}", "tap": tap_address,
               "triton": f"127.0.0.1:{triton_port}", "endpoint_file": endpoint_file,
               "spool": folder / "records" / "spool"}
    finally:
        if envoy is not None:
            envoy.stop()
        os.kill(adapter.proc.pid, signal.SIGCONT)  # in case a test left it stopped
        adapter.stop()


def pixels_input(rows: np.ndarray) -> triton_grpc.InferInput:
    tensor = triton_grpc.InferInput("pixels", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    return tensor


def infer(client: triton_grpc.InferenceServerClient, rows: np.ndarray, request_id: str):
    return client.infer(MODEL, [pixels_input(rows)], model_version=VERSION, request_id=request_id,
                        headers={"x-request-id": request_id})


def spooled(spool: Path, wanted: set[str], timeout: float = 30.0) -> dict[str, list[dict]]:
    """The adapter's records of the WANTED request ids, once all of them are on disk."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, list[dict]] = {}
        for spool_file in spool_files(spool):
            for _, record in read_frames(spool_file.path, 0):
                if record.get("kind") == "record" and record["request_id"] in wanted:
                    found.setdefault(record["request_id"], []).append(record)
        if set(found) == wanted or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_the_endpoint_file_tells_where_triton_answers_the_mesh_name(one_hop):
    endpoint = json.loads(one_hop["endpoint_file"].read_text())
    assert endpoint["triton_grpc"] == one_hop["triton"] and endpoint["tap"] == one_hop["tap"]
    assert (endpoint["triton_model"], endpoint["triton_version"], endpoint["direct"]) == (MODEL, VERSION, True)


def test_stock_clients_through_envoy_get_the_adapters_answers_and_each_is_recorded_once(one_hop):
    front = triton_grpc.InferenceServerClient(one_hop["front"])
    own = triton_grpc.InferenceServerClient(one_hop["adapter"].address)
    rows = np.random.default_rng(7).uniform(0, 16, size=(50, 2, 64)).astype(np.float32)
    sent = {}
    for i, pixels in enumerate(rows):
        request_id = f"tap-{i:03d}"
        direct, adapter = infer(front, pixels, request_id), infer(own, pixels, f"own-{i:03d}")
        assert direct.get_response().model_name == MODEL and direct.get_response().model_version == VERSION
        np.testing.assert_array_equal(direct.as_numpy("digit"), adapter.as_numpy("digit"))
        np.testing.assert_allclose(direct.as_numpy("probabilities"), adapter.as_numpy("probabilities"), rtol=1e-6)
        sent[request_id] = (pixels, direct)
    records = spooled(one_hop["spool"], set(sent))
    assert set(records) == set(sent), f"no record for {sorted(set(sent) - set(records))}"
    for request_id, (pixels, answer) in sent.items():
        assert len(records[request_id]) == 1, records[request_id]
        record = records[request_id][0]
        assert (record["side"], record["model"], record["version"], record["role"], record["code"]) == \
               ("adapter", MODEL, VERSION, ROLE, "OK")
        body = json.loads(record["body"])
        np.testing.assert_allclose(body["inputs"]["pixels"]["values"], pixels)
        np.testing.assert_array_equal(body["outputs"]["digit"]["values"], answer.as_numpy("digit"))
        np.testing.assert_allclose(body["outputs"]["probabilities"]["values"], answer.as_numpy("probabilities"),
                                   rtol=1e-6)


def test_a_request_triton_refuses_is_recorded_with_its_status(one_hop):
    front = triton_grpc.InferenceServerClient(one_hop["front"])
    with pytest.raises(InferenceServerException) as refused:
        infer(front, np.zeros((1, 32), np.float32), "tap-bad-shape")
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    records = spooled(one_hop["spool"], {"tap-bad-shape"})["tap-bad-shape"]
    assert len(records) == 1 and records[0]["code"] == "INVALID_ARGUMENT", records
    assert "pixels" in records[0]["error"] and records[0]["role"] == ROLE


def test_a_tap_that_stops_reading_neither_fails_nor_slows_requests(one_hop):
    front = triton_grpc.InferenceServerClient(one_hop["front"])
    pixels = np.random.default_rng(8).uniform(0, 16, size=(1, 64)).astype(np.float32)

    def latencies(prefix: str) -> list[float]:
        times = []
        for i in range(30):
            started = time.perf_counter()
            assert infer(front, pixels, f"{prefix}-{i}").as_numpy("digit").shape == (1, 1)
            times.append(time.perf_counter() - started)
        return times

    before = latencies("tap-before")
    adapter_pid = one_hop["adapter"].proc.pid
    os.kill(adapter_pid, signal.SIGSTOP)  # the tap (and the adapter) stop; Triton runs in its own session
    try:
        stopped = latencies("tap-stopped")
    finally:
        os.kill(adapter_pid, signal.SIGCONT)
    print(f"median latency with the tap reading {statistics.median(before) * 1e3:.2f} ms, "
          f"stopped {statistics.median(stopped) * 1e3:.2f} ms, slowest {max(stopped) * 1e3:.2f} ms")
    assert max(stopped) < 1.0
    assert statistics.median(stopped) < 3 * statistics.median(before) + 0.02
