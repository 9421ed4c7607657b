"""The front listener's guards as rendered from the spec, checked by `envoy --mode validate`,
and the spec's security mistakes as one-line errors naming file, field and fix."""

import re

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
# The router's gRPC and REST workers: REST brings the console and its login routes.
UPSTREAMS = dict(router=["127.0.0.1:18004"], router_rest=["127.0.0.1:18005"])


def bootstrap_for(folder, security_yaml: str) -> dict:
    (folder / "meshserve.yaml").write_text("security:\n" + security_yaml)
    spec = load_spec(folder / "meshserve.yaml")
    return render_bootstrap(EnvoyLayout(folder / "run", **LAYOUT), spec, UpstreamAddresses(**UPSTREAMS))


def inlined_for(folder, security_yaml: str) -> dict:
    """The whole configuration with the watched files written in, as `envoy --mode validate` needs."""
    (folder / "meshserve.yaml").write_text("security:\n" + security_yaml)
    spec = load_spec(folder / "meshserve.yaml")
    return render(EnvoyLayout(folder / "run", **LAYOUT), spec, UpstreamAddresses(**UPSTREAMS)).inlined()


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


def front_manager(config: dict) -> dict:
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def front_routes(config: dict) -> list[dict]:
    return front_manager(config)["route_config"]["virtual_hosts"][0]["routes"]


def typed_config(config: dict, name: str) -> dict | None:
    return next((f["typed_config"] for f in front_manager(config)["http_filters"] if f["name"].endswith(name)), None)


def matches(rule_or_route: dict, path: str, headers: dict[str, str]) -> bool:
    """Whether a route's (or a jwt_authn rule's) match takes PATH with HEADERS, for the matchers rendered."""
    match = rule_or_route["match"]
    if ("path" in match and match["path"] != path) or not path.startswith(match.get("prefix", "")):
        return False
    if "grpc" in match and not headers.get("content-type", "").startswith("application/grpc"):
        return False
    for header in match.get("headers", []):
        value = headers.get(header["name"])
        if "present_match" in header and (value is not None) != header["present_match"]:
            return False
        wanted = header.get("string_match", {})
        if "exact" in wanted and value != wanted["exact"]:
            return False
        if "safe_regex" in wanted and (value is None or not re.fullmatch(wanted["safe_regex"]["regex"], value)):
            return False
    return True


def key_sources(route: dict, filter_config: dict) -> list[dict]:
    """Where api_key_auth takes the key from on ROUTE ([] when it is off there)."""
    override = route.get("typed_per_filter_config", {}).get("envoy.filters.http.api_key_auth", {})
    return [] if override.get("disabled") else override.get("key_sources", filter_config["key_sources"])


def jwt_sources(config: dict, path: str, headers: dict[str, str]) -> list[str]:
    """Where jwt_authn takes a token from for a request (the first rule that matches it; [] for none)."""
    jwt = typed_config(config, "jwt_authn")
    rule = next(r for r in jwt["rules"] if matches(r, path, headers))
    if "requires" not in rule:
        return []
    provider = jwt["providers"][rule["requires"]["provider_name"]]
    return ["header"] + [f"cookie {c}" for c in provider.get("from_cookies", [])]


COOKIES = {"cookie": "meshserve-console-key=KEY; meshserve-console-token=TOKEN"}
GRPC = {"content-type": "application/grpc"}


@pytest.mark.parametrize("case", ["JWT", "API keys", "everything"])
def test_the_console_login_cookies_authenticate_console_paths_only(folder, case):
    config = inlined_for(folder, CASES[case])
    api_keys = typed_config(config, "api_key_auth")
    requests = {  # what a browser, an inference client and the control API send, with the login cookies
        "/console/": COOKIES, "/console/api/models": COOKIES, "/console/session": COOKIES,
        "/v2/models/iris/infer": COOKIES, "/inference.GRPCInferenceService/ModelInfer": {**COOKIES, **GRPC},
        "/meshserve.v1.Control/ListModels": {**COOKIES, **GRPC},
    }
    for path, headers in requests.items():
        route = next(r for r in front_routes(config) if matches(r, path, headers))
        sources = [*(key_sources(route, api_keys) if api_keys else []),
                   *(jwt_sources(config, path, headers) if typed_config(config, "jwt_authn") else [])]
        takes_cookie = any("cookie" in str(s) for s in sources)
        assert takes_cookie == (path.startswith("/console/") and path != "/console/session"), (path, sources)
        assert sources, f"{path}: no credential checked at all"
    # The login page and logging out need none, show no data, and RBAC lets anyone reach them.
    for path in ("/console/login", "/console/login/login.js", "/console/logout"):
        route = next(r for r in front_routes(config) if matches(r, path, {}))
        assert not (api_keys and key_sources(route, api_keys)) and not (
            typed_config(config, "jwt_authn") and jwt_sources(config, path, {}))
    public = typed_config(config, "rbac")["rules"]["policies"]["console-login"]
    assert public["permissions"] == [{"url_path": {"path": {"prefix": "/console/login"}}},
                                     {"url_path": {"path": {"exact": "/console/logout"}}}]
    # A browser refused the console's page is sent to the login page.
    redirect = front_manager(config)["local_reply_config"]["mappers"][0]
    assert redirect["status_code"] == 302 and redirect["headers_to_add"][0]["header"]["value"] == "/console/login"


def test_without_authentication_the_console_has_no_login(folder):
    config = inlined_for(folder, CASES["TLS only"])
    assert not any(r.get("name", "").startswith("console-") for r in front_routes(config))
    assert "console-login" not in typed_config(config, "rbac")["rules"]["policies"]
    assert all(m.get("status_code") != 302 for m in front_manager(config)["local_reply_config"]["mappers"])


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
