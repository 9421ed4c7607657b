"""Behind a secured front, the router, the adapters and Envoy's mesh listener answer only the
mesh's own processes: a local process calling their ports directly is refused UNAUTHENTICATED
(REST 401) and cannot pose as a principal, while every client of the front is served as before.
A mesh without a `security:` section asks nothing of its callers behind the front."""

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES, start_mesh
from credentials import AUDIENCE, ISSUER, make_certificate, token, write_api_keys, write_jwks
from meshserve.core.mesh_protocol import MESH_SECRET_HEADER
from meshserve.envoy.admin import EnvoyAdmin
from meshserve.v1 import control_pb2 as cpb
from meshserve.v1 import control_pb2_grpc as cpb_grpc

SCORER_KEY = "scorer-key-0123456789abcdef"
REFUSAL = "this port is internal to the mesh; call the mesh's front address"
SPEC = f"""
security:
  tls: {{certificate: front.pem, private_key: front.key}}
  jwt: {{issuer: "{ISSUER}", audiences: [{AUDIENCE}], jwks_file: jwks.json}}
  api_keys_file: api-keys.yaml
  principals:
    scorer: {{models: [iris-species, breast-cancer]}}
    ops: {{admin: true}}
    release-bot: {{admin: true}}
models:
  breast-cancer:
    variants: [{{version: "1", weight: 100}}]
    shadows: [{{version: "2", fraction: 1.0}}]
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mesh-secret")
    for name in ("iris_species", "breast_cancer", "breast_cancer_v2"):
        (folder / name).symlink_to(EXAMPLES / name, target_is_directory=True)
    make_certificate(folder)
    write_jwks(folder / "jwks.json")
    write_api_keys(folder / "api-keys.yaml", {"scorer": SCORER_KEY})
    (folder / "meshserve.yaml").write_text(SPEC)
    run_dir = folder / "run"
    process = start_mesh(folder, "--run-dir", str(run_dir))
    process.folder, process.run_dir = folder, run_dir
    process.certificate = (folder / "front.pem").read_bytes()
    process.router, process.router_rest = re.search(r"-> router (\S+) \(REST (\S+)\)", process.output).groups()
    table = json.loads((run_dir / "models.json").read_text())
    process.adapter = next(m for m in table["models"] if m["name"] == "iris-species")["versions"][0]["address"]
    process.mesh = table["control"]["envoy"]["mesh"]
    clusters = yaml.safe_load((run_dir / "envoy" / "clusters" / "clusters.yaml").read_text())["resources"]
    rest = next(c for c in clusters if c["name"] == "rest|iris-species|1")
    address = rest["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    process.adapter_rest = f"{address['address']}:{address['port_value']}"
    yield process
    process.stop()


@pytest.fixture(scope="module")
def front(secured):
    with grpc.secure_channel(secured.address, grpc.ssl_channel_credentials(secured.certificate)) as channel:
        yield channel


def iris_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris-species")
    request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(np.full((1, 4), 1.5, np.float32).tobytes())
    return request


def breast_cancer_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="breast-cancer")
    request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    request.raw_input_contents.append(np.full((1, 30), 0.5, np.float64).tobytes())
    return request


def bearer(subject: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token(subject)}")]


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def rollout(weights: dict[str, int]) -> cpb.SetRolloutRequest:
    return cpb.SetRolloutRequest(rollout=cpb.Rollout(model="iris-species", weights=weights))


def log_entries(secured) -> list[dict]:
    path = secured.run_dir / "deployment-log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_routers_own_port_refuses_a_caller_without_the_mesh_secret(secured):
    with grpc.insecure_channel(secured.router) as channel:
        stub, control = pb_grpc.GRPCInferenceServiceStub(channel), cpb_grpc.ControlStub(channel)
        calls = {
            "SetRollout": lambda: control.SetRollout(rollout({"1": 100}), timeout=10),
            "ModelMetadata": lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="iris-species"), timeout=10),
            "ModelInfer": lambda: stub.ModelInfer(iris_request(), timeout=10),
        }
        for name, call in calls.items():
            error = refused(call)
            assert (error.code(), error.details()) == (grpc.StatusCode.UNAUTHENTICATED, REFUSAL), name


def test_a_principal_forged_on_the_routers_port_never_reaches_the_deployment_log(secured):
    before = len(log_entries(secured))
    with grpc.insecure_channel(secured.router) as channel:
        control = cpb_grpc.ControlStub(channel)
        forged = [("x-meshserve-principal", "release-bot"), ("x-meshserve-peer", "10.0.0.1")]
        assert refused(lambda: control.SetRollout(rollout({"1": 100}), metadata=forged, timeout=10)).code() == \
            grpc.StatusCode.UNAUTHENTICATED
    entries = log_entries(secured)
    assert len(entries) == before and all(e.get("principal") != "release-bot" for e in entries)


def test_an_adapters_grpc_and_rest_ports_refuse_a_direct_caller(secured):
    with grpc.insecure_channel(secured.adapter) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        forged = [("x-meshserve-principal", "scorer"), (MESH_SECRET_HEADER, "a-guess")]
        for metadata in ([], forged):
            error = refused(lambda: stub.ModelInfer(iris_request(), metadata=metadata, timeout=10))
            assert (error.code(), error.details()) == (grpc.StatusCode.UNAUTHENTICATED, REFUSAL)
    body = json.dumps({"inputs": [{"name": "measurements", "shape": [1, 4], "datatype": "FP32",
                                   "data": [1, 1, 1, 1]}]}).encode()
    for address, path in ((secured.adapter_rest, "/v2/models/iris-species/infer"),
                          (secured.router_rest, "/v2/models/iris-species")):
        request = urllib.request.Request(f"http://{address}{path}", data=body if "infer" in path else None,
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 401 and json.loads(caught.value.read())["error"] == REFUSAL


def test_envoys_mesh_listener_refuses_a_caller_without_the_mesh_secret(secured):
    with grpc.insecure_channel(secured.mesh) as channel:
        error = refused(lambda: pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            iris_request(), metadata=[("x-meshserve-model", "iris-species")], timeout=10))
    assert (error.code(), error.details()) == (grpc.StatusCode.UNAUTHENTICATED, REFUSAL)


def test_the_secret_is_what_opens_a_port_and_it_stays_out_of_the_spec_and_in_private_files(secured):
    bootstrap = yaml.safe_load((secured.run_dir / "envoy" / "bootstrap.yaml").read_text())
    mesh = next(l for l in bootstrap["static_resources"]["listeners"] if l["name"] == "mesh")
    check = mesh["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]["typed_config"]
    secret = check["credentials"][0]["key"]
    assert len(secret) >= 43  # 32 random bytes
    with grpc.insecure_channel(secured.adapter) as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            iris_request(), metadata=[(MESH_SECRET_HEADER, secret)], timeout=10)
    assert answer.outputs[0].name == "species"
    for path in (secured.run_dir / "envoy").rglob("*.yaml"):
        assert path.stat().st_mode & 0o077 == 0, path
    for path in (secured.folder / "meshserve.yaml", secured.run_dir / "models.json",
                 secured.run_dir / "deployment.json", *(secured.run_dir / "envoy").glob("*/*.yaml")):
        assert secret not in path.read_text(), path
    admin = json.loads((secured.run_dir / "models.json").read_text())["control"]["envoy"]["admin"]
    dump = urllib.request.urlopen(f"http://{admin}/config_dump", timeout=10).read().decode()
    assert secret not in dump, "Envoy's admin interface answers any local process"


def test_clients_of_the_front_are_served_and_an_admins_rollout_is_logged_under_its_principal(secured, front):
    stub = pb_grpc.GRPCInferenceServiceStub(front)
    assert stub.ModelInfer(iris_request(), metadata=[("x-api-key", SCORER_KEY)], timeout=10).outputs[0].name == \
        "species"
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="iris-species"), metadata=bearer("scorer"), timeout=10)
    assert metadata.name == "iris-species"  # the router answered, reached through the front
    forged = [*bearer("ops"), ("x-meshserve-principal", "release-bot")]
    applied = cpb_grpc.ControlStub(front).SetRollout(rollout({"1": 100}), metadata=forged, timeout=15)
    assert dict(applied.weights) == {"1": 100}
    last = log_entries(secured)[-1]
    assert (last["principal"], last["action"], last["result"]) == ("ops", "SetRollout", "applied")


def test_streams_go_through_the_router_and_envoys_mesh_listener_with_the_secret(front):
    stub = pb_grpc.GRPCInferenceServiceStub(front)
    answers = list(stub.ModelStreamInfer(iter([iris_request(), iris_request()]), metadata=[("x-api-key", SCORER_KEY)],
                                         timeout=30))
    assert [a.error_message for a in answers] == ["", ""]
    assert all(a.infer_response.outputs[0].name == "species" for a in answers)


def test_envoys_health_checks_carry_the_secret(secured):
    admin = EnvoyAdmin(json.loads((secured.run_dir / "models.json").read_text())["control"]["envoy"]["admin"])
    for cluster in ("variant|iris-species|1", "rest|iris-species|1", "mirror|breast-cancer|2"):
        deadline, hosts = time.monotonic() + 15, {}
        while time.monotonic() < deadline and not (hosts and set(hosts.values()) == {"healthy"}):
            hosts = admin.hosts(cluster)
            time.sleep(0.2)
        assert hosts and set(hosts.values()) == {"healthy"}, (cluster, hosts)


def test_copies_mirrored_to_a_shadow_and_the_routers_own_calls_carry_the_secret(front):
    stub = pb_grpc.GRPCInferenceServiceStub(front)
    for _ in range(3):
        stub.ModelInfer(breast_cancer_request(), metadata=[("x-api-key", SCORER_KEY)], timeout=10)
    deadline, count = time.monotonic() + 15, 0
    while time.monotonic() < deadline and count < 3:
        # The router asks the shadow's adapter for its statistics: its own call needs the secret too.
        statistics = stub.ModelStatistics(pb.ModelStatisticsRequest(name="breast-cancer", version="2"),
                                          metadata=bearer("ops"), timeout=10)
        count = sum(s.inference_stats.success.count for s in statistics.model_stats)
        time.sleep(0.2)
    assert count >= 3, "the shadow's adapter answered no mirrored copy"


def test_a_mesh_without_security_asks_nothing_behind_the_front(python_mesh):
    router = re.search(r"-> router (\S+) ", python_mesh.output).group(1)
    run_dir = re.search(r"config in (\S+)", python_mesh.output).group(1)
    table = json.loads((Path(run_dir).parent / "models.json").read_text())
    adapter = next(m for m in table["models"] if m["name"] == "iris-species")["versions"][0]["address"]
    for address in (router, adapter):
        with grpc.insecure_channel(address) as channel:
            answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelMetadata(
                pb.ModelMetadataRequest(name="iris-species"), timeout=10)
        assert answer.name == "iris-species"
