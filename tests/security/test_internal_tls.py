"""With `security.internal_tls`, every connection behind the front is mutual TLS: clients still
get answers through the front, while a local process without the internal certificate can no
longer call an adapter or the router directly and bypass the front's checks."""

import json

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from conftest import EXAMPLES, start_mesh
from credentials import make_internal_pki


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    folder = tmp_path_factory.mktemp("internal-tls")
    (folder / "iris_species").symlink_to(EXAMPLES / "iris_species", target_is_directory=True)
    pki = make_internal_pki(folder)
    (folder / "meshserve.yaml").write_text(
        "security:\n  internal_tls: {certificate: internal-cert.pem, private_key: internal-key.pem, ca: internal-ca.pem}\n")
    process = start_mesh(folder, "--run-dir", str(folder / "run"))
    table = json.loads((folder / "run" / "models.json").read_text())
    process.adapter = table["models"][0]["versions"][0]["address"]
    process.pki = {name: path.read_bytes() for name, path in pki.items()}
    yield process
    process.stop()


def iris_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris-species")
    request.inputs.add(name="measurements", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(np.ones((1, 4), np.float32).tobytes())
    return request


def test_clients_are_served_through_the_front_over_internal_mutual_tls(mesh):
    with grpc.insecure_channel(mesh.address) as channel:
        for _ in range(20):
            assert pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(iris_request(), timeout=10).outputs[0].name == \
                "species"


@pytest.mark.parametrize("how", ["plain text", "TLS without a client certificate"])
def test_an_adapter_refuses_a_direct_caller_without_the_internal_certificate(mesh, how):
    if how == "plain text":
        channel = grpc.insecure_channel(mesh.adapter)
    else:
        channel = grpc.secure_channel(mesh.adapter, grpc.ssl_channel_credentials(root_certificates=mesh.pki["ca"]))
    with channel, pytest.raises(grpc.RpcError) as caught:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(iris_request(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_internal_certificate_is_what_opens_an_adapter(mesh):
    credentials = grpc.ssl_channel_credentials(root_certificates=mesh.pki["ca"], private_key=mesh.pki["private_key"],
                                               certificate_chain=mesh.pki["certificate"])
    with grpc.secure_channel(mesh.adapter, credentials) as channel:
        assert pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(iris_request(), timeout=10).outputs[0].name == \
            "species"


def test_rest_is_served_through_the_front_and_the_routers_rest_port_wants_the_certificate(mesh, tmp_path):
    import http.client
    import re
    import ssl

    body = json.dumps({"inputs": [{"name": "measurements", "shape": [1, 4], "datatype": "FP32",
                                   "data": [1, 1, 1, 1]}]})
    front = http.client.HTTPConnection(mesh.address, timeout=30)
    front.request("POST", "/v2/models/iris-species/infer", body, {"Content-Type": "application/json"})
    answer = front.getresponse()
    assert answer.status == 200 and json.loads(answer.read())["outputs"][0]["name"] == "species"
    front.close()
    host, port = re.search(r"\(REST ([\d.]+):(\d+)\)", mesh.output).groups()
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        direct = http.client.HTTPConnection(host, int(port), timeout=10)
        direct.request("GET", "/v2/health/live")
        direct.getresponse().read()
    context = ssl.create_default_context(cadata=mesh.pki["ca"].decode())
    context.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        direct = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
        direct.request("GET", "/v2/health/live")
        direct.getresponse().read()
    for name in ("certificate", "private_key"):
        (tmp_path / name).write_bytes(mesh.pki[name])
    context.load_cert_chain(tmp_path / "certificate", tmp_path / "private_key")
    trusted = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    trusted.request("GET", "/v2/health/live")
    assert trusted.getresponse().status == 200
