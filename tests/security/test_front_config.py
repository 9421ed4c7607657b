"""The front listener's guards as rendered from the spec, checked by `envoy --mode validate`,
and the spec's security mistakes as one-line errors naming file, field and fix."""

import pytest

from credentials import make_certificate, make_internal_pki, write_api_keys, write_jwks
from meshserve.core.errors import ManifestError
from meshserve.envoy.bootstrap import render_bootstrap
from meshserve.envoy.render import render
from meshserve.envoy.layout import EnvoyLayout, UpstreamAddresses
from meshserve.envoy.process import validate_config
from meshserve.spec.deployment_spec import load_spec


@pytest.fixture
def folder(tmp_path):
    make_certificate(tmp_path)
    write_jwks(tmp_path / "jwks.json")
    write_api_keys(tmp_path / "keys.yaml", {"scorer": "k" * 20, "ops": "o" * 20})
    make_internal_pki(tmp_path)
    return tmp_path


LAYOUT = dict(front="127.0.0.1:18001", mesh="127.0.0.1:18002", admin="127.0.0.1:18003")


def bootstrap_for(folder, security_yaml: str) -> dict:
    (folder / "meshserve.yaml").write_text("security:\n" + security_yaml)
    spec = load_spec(folder / "meshserve.yaml")
    return render_bootstrap(EnvoyLayout(folder / "run", **LAYOUT), spec, UpstreamAddresses(router=["127.0.0.1:18004"]))


def inlined_for(folder, security_yaml: str) -> dict:
    """The whole configuration with the watched files written in, as `envoy --mode validate` needs."""
    (folder / "meshserve.yaml").write_text("security:\n" + security_yaml)
    spec = load_spec(folder / "meshserve.yaml")
    return render(EnvoyLayout(folder / "run", **LAYOUT), spec, UpstreamAddresses(router=["127.0.0.1:18004"])).inlined()


def front_filters(config: dict) -> list[str]:
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return [f["name"].rsplit(".", 1)[1] for f in manager["http_filters"]]


CASES = {
    "nothing configured": "  control_from: ['127.0.0.1/32']\n",
    "TLS only": "  tls: {certificate: front.pem, private_key: front.key}\n",
    "mutual TLS": "  tls: {certificate: front.pem, private_key: front.key, client_ca: front.pem}\n",
    "JWT": "  jwt: {issuer: https://login.test, jwks_file: jwks.json}\n  principals: {scorer: {models: ['*']}}\n",
    "remote JWKS": "  jwt: {issuer: https://login.test, jwks_uri: 'https://login.test/jwks.json'}\n",
    "API keys": "  api_keys_file: keys.yaml\n  principals: {scorer: {models: ['*']}, ops: {admin: true}}\n",
    "internal mutual TLS": ("  internal_tls: {certificate: internal-cert.pem, private_key: internal-key.pem, "
                            "ca: internal-ca.pem}\n"),
    "everything": ("  tls: {certificate: front.pem, private_key: front.key}\n"
                   "  jwt: {issuer: https://login.test, audiences: [meshserve], jwks_file: jwks.json}\n"
                   "  api_keys_file: keys.yaml\n  control_from: []\n"
                   "  principals: {scorer: {models: ['*']}, auditor: {records: true}, ops: {admin: true}}\n"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_combination_renders_a_config_envoy_accepts(folder, case):
    config = inlined_for(folder, CASES[case])
    validate_config(config)
    filters = front_filters(config)
    assert filters[0] == "header_mutation" and filters[-2:] == ["rbac", "router"]


def test_without_security_the_control_api_is_still_only_for_trusted_peers(folder):
    (folder / "meshserve.yaml").write_text("models: {}\n")
    spec = load_spec(folder / "meshserve.yaml")
    layout = EnvoyLayout(folder / "run", front="0.0.0.0:18001", mesh="127.0.0.1:18002", admin="127.0.0.1:18003")
    config = render_bootstrap(layout, spec, UpstreamAddresses(router=["127.0.0.1:18004"]))
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    policies = manager["http_filters"][-2]["typed_config"]["rules"]["policies"]
    assert policies["control-from-trusted-peers"]["principals"] == [
        {"direct_remote_ip": {"address_prefix": "127.0.0.1", "prefix_len": 32}},
        {"direct_remote_ip": {"address_prefix": "::1", "prefix_len": 128}}]
    assert policies["inference"]["permissions"] == [{"not_rule": {"url_path": {"path": {"prefix": "/meshserve.v1.Control/"}}}}]


@pytest.mark.parametrize("security_yaml, field, words", [
    ("  tls: {certificate: missing.pem, private_key: front.key}\n", "security.tls.certificate", "does not exist"),
    ("  jwt: {issuer: x, jwks_file: front.pem}\n", "security.jwt.jwks_file", "not a JSON Web Key Set"),
    ("  principals: {a: {admin: true}}\n", "security", "no authentication is configured"),
    ("  api_keys_file: short.yaml\n", "scorer", "at least 16 characters"),
    ("  control_from: [everyone]\n", "security.control_from", "not a network"),
])
def test_a_security_mistake_names_the_file_the_field_and_the_fix(folder, security_yaml, field, words):
    write_api_keys(folder / "short.yaml", {"scorer": "tiny"})
    with pytest.raises(ManifestError) as caught:
        bootstrap_for(folder, security_yaml)
    assert caught.value.field == field and words in caught.value.problem and caught.value.fix


def test_a_spec_asking_for_authentication_refuses_to_run_without_envoy(folder):
    import subprocess

    from conftest import EXAMPLES, meshserve_argv

    (folder / "iris_species").symlink_to(EXAMPLES / "iris_species", target_is_directory=True)
    (folder / "meshserve.yaml").write_text("security:\n  api_keys_file: keys.yaml\n")
    result = subprocess.run(meshserve_argv("up", str(folder), "--no-envoy", "--listen", "127.0.0.1:0"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--no-envoy runs without it. Fix: run `meshserve up` without --no-envoy" in result.stderr
