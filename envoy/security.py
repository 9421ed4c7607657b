"""The front listener's guards, rendered from the spec's `security:` section (meshserve/spec/security_spec.py).

In the order Envoy runs them, all before the request reaches the router:
- TLS on the listener (ALPN h2 for gRPC), with client certificates when `client_ca` is set;
- a header mutation that removes any `x-meshserve-principal` / `x-meshserve-peer` a client
  sent, so only what the filters below establish reaches the router;
- `jwt_authn` (a local or remote JWKS) and `api_key_auth` (x-api-key), each writing the
  principal it verified into `x-meshserve-principal`; a missing or bad credential is 401,
  which a gRPC client reads as UNAUTHENTICATED. On the console's paths only, each also reads
  the cookie the console's login sets (a plain browser sends no headers of its own), so a
  cookie never authenticates an inference or a control call; the login page itself is public,
  and a browser refused the console's page is sent to it;
- the body-routing filter (body_routing.py), which puts a ModelInfer's model into a header;
- `rbac`: health (gRPC's health service and REST's /v2/health/) for anyone, the control API for `control_from` peers and admin principals,
  the records reads (GetRecords, GetComparison, ...) for records readers, inference for principals with models, each ModelInfer only
  to the models its principal may call (on the model header); anything else is 403,
  PERMISSION_DENIED. REST requests pass the same filters as gRPC ones: the rules match paths and headers, which
  both bindings have, and the router's REST listener is reached only through this listener.
  Calls that name their model elsewhere (metadata, streams, REST) reach the router, which
  applies the same per-model rule from the principal header before any other work.

`secure_front` adds all of it to the rendered front listener; `secure_routes` the routes it
needs (health and the login page without credentials, the console with its cookie);
`security_clusters` the cluster a remote JWKS is fetched from.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from meshserve.core.mesh_protocol import (
    CONSOLE_KEY_COOKIE, CONSOLE_TOKEN_COOKIE, MESH_SECRET_HEADER, MODEL_HEADER, PEER_HEADER, PRINCIPAL_HEADER)
from meshserve.core.mesh_secret import MESH_SECRET_ENV, REFUSAL
from meshserve.spec.deployment_spec import DeploymentSpec
from meshserve.spec.security_spec import ALL_MODELS, SecuritySpec, api_keys

API_KEY_HEADER = "x-api-key"
API_KEY_FILTER = "envoy.filters.http.api_key_auth"
JWT_PROVIDER = "meshserve"
# The same issuer and keys as JWT_PROVIDER, read from elsewhere: on the console's paths also from
# the login cookie; on its log-in call forwarded to the router, which keeps it in that cookie.
CONSOLE_JWT_PROVIDER = "meshserve-console"
SESSION_JWT_PROVIDER = "meshserve-console-login"
JWKS_CLUSTER = "jwks"
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REST_HEALTH_PREFIX = "/v2/health/"  # the REST binding's liveness and readiness, for HTTP probes
CONTROL_PREFIX = "/meshserve.v1.Control/"
CONSOLE_PREFIX = "/console/"  # the operator's console, served by the router (meshserve/console/)
CONSOLE_ROUTE_PREFIX = "/console"  # what the console's routes match (envoy/routes.py)
# The console's login (meshserve/console/session.py): the page and its files, and logging out,
# need no credentials and show no data; logging in sends the credential in a header, once.
LOGIN_PREFIX = "/console/login"
LOGOUT_PATH = "/console/logout"
SESSION_PATH = "/console/session"
CONSOLE_PAGE_PATHS = r"/console/?(\?.*)?"  # what a browser opens: refused there, it is sent to the login page
# The control API's reads of prediction records, for principals with `records: true` (Explain
# also scores the record's model, which the router checks against the principal's models).
RECORDS_PATHS = tuple(CONTROL_PREFIX + method for method in (
    "GetRecords", "GetComparison", "GetDrift", "GetQuality", "ExportRecords", "Explain"))
# What Envoy sends as the mesh secret: read from its environment when it sends, so neither the
# watched files nor the admin interface's config dump hold the secret itself.
MESH_SECRET_VALUE = f"%ENVIRONMENT({MESH_SECRET_ENV})%"

TLS_CONTEXT = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
HEADER_MUTATION = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"
JWT_AUTHN = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
API_KEY_AUTH = "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth"
API_KEY_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuthPerRoute"
RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
FILTER_CONFIG = "type.googleapis.com/envoy.config.route.v3.FilterConfig"


def secure_front(listener: dict[str, Any], spec: DeploymentSpec) -> dict[str, Any]:
    """The rendered front LISTENER with TLS, authentication and authorization from SPEC.
    Authentication runs before the body-routing filter, authorization after it (the per-model
    rules read the model header it sets)."""
    security = spec.security
    chain = listener["filter_chains"][0]
    if security.tls is not None:
        chain["transport_socket"] = _tls(security)
    manager = chain["filters"][0]["typed_config"]
    # Paths are matched by the rules below: one spelling per path, so "//meshserve.v1.Control/..."
    # or an escaped slash cannot slip past a prefix; and a client must send its headers promptly.
    manager.update({"normalize_path": True, "merge_slashes": True,
                    "path_with_escaped_slashes_action": "REJECT_REQUEST", "request_headers_timeout": "10s"})
    guards = [_strip_mesh_headers()]
    if security.jwt is not None:
        guards.append(_jwt_authn(security))
    if security.api_keys_file is not None:
        guards.append(_api_key_auth(security))
    filters = manager["http_filters"]
    body_routing = next((i for i, f in enumerate(filters) if f["name"] == "envoy.filters.http.lua"), len(filters) - 1)
    filters[body_routing:body_routing] = guards
    filters[-1:-1] = [_rbac(security)]  # last before the router filter
    if security.authenticates:
        manager.setdefault("local_reply_config", {}).setdefault("mappers", []).insert(0, _to_login_page())
    return listener


def secure_routes(host: dict[str, Any], spec: DeploymentSpec, mesh_secret: str = "") -> dict[str, Any]:
    """The route table's virtual HOST with what the spec's security needs of routes: the caller's
    address for the router (control_from, the deployment log), the mesh secret on every request
    sent on (mirrored copies too), and routes that skip API-key checks where they do not apply."""
    security = spec.security
    added = host.setdefault("request_headers_to_add", [])
    added.append({"header": {"key": PEER_HEADER, "value": "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%"},
                  "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"})
    if mesh_secret:
        added.append({"header": {"key": MESH_SECRET_HEADER, "value": MESH_SECRET_VALUE},
                      "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"})
    if security.authenticates:
        host["routes"] = _console_login_routes(host["routes"])
    if security.api_keys_file is not None:
        host["routes"] = _api_key_routes(host["routes"], both=security.jwt is not None)
    return host


def security_clusters(spec: DeploymentSpec) -> list[dict[str, Any]]:
    """The cluster Envoy fetches a remote JWKS from (none for a local one)."""
    jwt = spec.security.jwt
    if jwt is None or jwt.jwks_uri is None:
        return []
    url = urlsplit(jwt.jwks_uri)
    port = url.port or (443 if url.scheme == "https" else 80)
    cluster: dict[str, Any] = {
        "name": JWKS_CLUSTER, "type": "STRICT_DNS", "connect_timeout": "5s", "dns_lookup_family": "V4_PREFERRED",
        "load_assignment": {"cluster_name": JWKS_CLUSTER, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": url.hostname, "port_value": port}}}}]}]},
    }
    if url.scheme == "https":
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": UPSTREAM_TLS, "sni": url.hostname}}
    return [cluster]


def _tls(security: SecuritySpec) -> dict[str, Any]:
    tls = security.tls
    common: dict[str, Any] = {
        # gRPC needs HTTP/2, chosen by ALPN; HTTP/1.1 stays for health probes.
        "alpn_protocols": ["h2", "http/1.1"],
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
        "tls_certificates": [{"certificate_chain": {"filename": tls.certificate},
                              "private_key": {"filename": tls.private_key}}],
    }
    context: dict[str, Any] = {"@type": TLS_CONTEXT, "common_tls_context": common}
    if tls.client_ca is not None:
        common["validation_context"] = {"trusted_ca": {"filename": tls.client_ca}}
        context["require_client_certificate"] = True
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _strip_mesh_headers() -> dict[str, Any]:
    return {"name": "envoy.filters.http.header_mutation", "typed_config": {
        "@type": HEADER_MUTATION,
        "mutations": {"request_mutations": [{"remove": PRINCIPAL_HEADER}, {"remove": PEER_HEADER}]}}}


def _jwt_authn(security: SecuritySpec) -> dict[str, Any]:
    jwt = security.jwt
    provider: dict[str, Any] = {
        "issuer": jwt.issuer,
        "audiences": jwt.audiences,
        "forward": False,  # the token stops here; the router and adapters get the principal only
        "claim_to_headers": [{"header_name": PRINCIPAL_HEADER, "claim_name": jwt.principal_claim}],
    }
    if jwt.jwks_file is not None:
        provider["local_jwks"] = {"filename": jwt.jwks_file}
    else:
        provider["remote_jwks"] = {"http_uri": {"uri": jwt.jwks_uri, "cluster": JWKS_CLUSTER, "timeout": "5s"},
                                   "cache_duration": "600s"}
    providers = {
        JWT_PROVIDER: provider,
        CONSOLE_JWT_PROVIDER: {**provider, "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
                               "from_cookies": [CONSOLE_TOKEN_COOKIE]},
        SESSION_JWT_PROVIDER: {**provider, "forward": True},
    }
    keys = security.api_keys_file is not None
    # Probes carry no credentials, nor does the console's login page.
    rules: list[dict[str, Any]] = [{"match": {"prefix": HEALTH_PREFIX}}, {"match": {"prefix": REST_HEALTH_PREFIX}},
                                   {"match": {"prefix": LOGIN_PREFIX}}, {"match": {"path": LOGOUT_PATH}}]
    if keys:
        # A caller with an API key is authenticated by api_key_auth instead.
        rules.append({"match": {"prefix": "/", "headers": [{"name": API_KEY_HEADER, "present_match": True}]}})
    rules.append({"match": {"path": SESSION_PATH}, "requires": {"provider_name": SESSION_JWT_PROVIDER}})
    if keys:  # so is a browser with the console's key cookie, on the console's paths
        rules.append({"match": {"prefix": CONSOLE_ROUTE_PREFIX, "headers": [_key_cookie_present()]}})
    rules.append({"match": {"prefix": CONSOLE_ROUTE_PREFIX}, "requires": {"provider_name": CONSOLE_JWT_PROVIDER}})
    rules.append({"match": {"prefix": "/"}, "requires": {"provider_name": JWT_PROVIDER}})
    return {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": JWT_AUTHN, "providers": providers, "rules": rules}}


def _key_cookie_present() -> dict[str, Any]:
    """A request header matcher: the console's API-key cookie is in the Cookie header (the whole
    header must match a safe_regex)."""
    return {"name": "cookie", "string_match": {"safe_regex": {
        "regex": rf"(.*;\s*)?{CONSOLE_KEY_COOKIE}=[^;]+(;.*)?"}}}


def _api_key_auth(security: SecuritySpec) -> dict[str, Any]:
    keys = api_keys(security.api_keys_file)
    return {"name": "envoy.filters.http.api_key_auth", "typed_config": {
        "@type": API_KEY_AUTH,
        "credentials": [{"key": key, "client": principal} for principal, key in sorted(keys.items())],
        "key_sources": [{"header": API_KEY_HEADER}],
        "forwarding": {"header": PRINCIPAL_HEADER, "hide_credentials": True}}}


def _console_login_routes(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ROUTES with the console's login routes (the public page and logging out, logging in) before
    its own route, all to the router as that route goes; none of them passes a cookie on (the
    router reads credentials from the headers the filters set, never from cookies)."""
    at = next((i for i, r in enumerate(routes) if r.get("name") == "console"), None)
    if at is None:  # no REST listener on the router: no console
        return routes
    console = {**routes[at], "request_headers_to_remove": ["cookie"]}
    login = [{**console, "name": "console-login", "match": {"prefix": LOGIN_PREFIX}},
             {**console, "name": "console-logout", "match": {"path": LOGOUT_PATH}},
             {**console, "name": "console-session", "match": {"path": SESSION_PATH}}]
    return [*routes[:at], *login, console, *routes[at + 1:]]


def _keyed(route: dict[str, Any]) -> dict[str, Any]:
    """ROUTE with api_key_auth as the console needs it: logging in forwards the key it checked (the
    router keeps it in the cookie); the console takes the key from its cookie too."""
    # A route's override replaces the filter's forwarding whole, so each says it again.
    if route.get("name") == "console-session":
        override: dict[str, Any] = {"forwarding": {"header": PRINCIPAL_HEADER, "hide_credentials": False}}
    elif route.get("name") == "console":
        override = {"key_sources": [{"header": API_KEY_HEADER}, {"cookie": CONSOLE_KEY_COOKIE}],
                    "forwarding": {"header": PRINCIPAL_HEADER, "hide_credentials": True}}
    else:
        return route
    return {**route, "typed_per_filter_config": {**route.get("typed_per_filter_config", {}),
                                                 API_KEY_FILTER: {"@type": API_KEY_PER_ROUTE, **override}}}


def _api_key_routes(routes: list[dict[str, Any]], both: bool) -> list[dict[str, Any]]:
    """Health and the console's login page without a key; with JWT too, routes for callers with a
    key first (on the console, a key in its cookie too), then the same routes with api_key_auth
    off for the JWT callers."""
    off = {API_KEY_FILTER: {"@type": FILTER_CONFIG, "disabled": True}}
    to_router = {r.get("name"): r["route"] for r in routes if r.get("name") in ("router", "router-rest")}
    health_off = {**next(r for r in routes if r.get("name") == "router").get("typed_per_filter_config", {}), **off}
    health = [{"match": {"prefix": HEALTH_PREFIX}, "route": dict(to_router["router"]),
               "typed_per_filter_config": health_off}]
    if "router-rest" in to_router:
        health.append({"match": {"prefix": REST_HEALTH_PREFIX}, "route": dict(to_router["router-rest"]),
                       "typed_per_filter_config": health_off})
    public = [{**r, "typed_per_filter_config": {**r.get("typed_per_filter_config", {}), **off}}
              for r in routes if r.get("name") in ("console-login", "console-logout")]
    keyed = [_keyed(r) for r in routes if r.get("name") not in ("console-login", "console-logout")]
    if not both:
        return [*health, *public, *keyed]
    with_key = [{**r, "match": {**r["match"], "headers": [{"name": API_KEY_HEADER, "present_match": True}]}}
                for r in keyed]
    without_key = []
    for route in keyed:
        if route.get("name") == "console":
            # Only the console takes a key from its cookie (logging in, above it, takes headers only);
            # jwt_authn skips the same requests (_jwt_authn).
            without_key.append({**route, "name": "console|key-cookie",
                                "match": {**route["match"], "headers": [_key_cookie_present()]}})
        without_key.append({**route, "typed_per_filter_config": {**route.get("typed_per_filter_config", {}), **off}})
    return [*health, *public, *with_key, *without_key]


def _principal(name: str) -> dict[str, Any]:
    return {"header": {"name": PRINCIPAL_HEADER, "string_match": {"exact": name}}}


def _network(network: str) -> dict[str, Any]:
    net = ipaddress.ip_network(network, strict=False)
    return {"direct_remote_ip": {"address_prefix": str(net.network_address), "prefix_len": net.prefixlen}}


def _rbac(security: SecuritySpec) -> dict[str, Any]:
    control = {"url_path": {"path": {"prefix": CONTROL_PREFIX}}}
    policies: dict[str, Any] = {
        "health": {"permissions": [{"url_path": {"path": {"prefix": prefix}}} for prefix in (HEALTH_PREFIX,
                                                                                          REST_HEALTH_PREFIX)],
                   "principals": [{"any": True}]},
    }
    if security.control_from:
        policies["control-from-trusted-peers"] = {
            "permissions": [control], "principals": [_network(n) for n in security.control_from]}
    rules = security.principals
    admins = sorted(p for p, r in rules.items() if r.admin)
    readers = sorted(p for p, r in rules.items() if r.records and not r.admin)
    callers = sorted(p for p, r in rules.items() if r.models and not r.admin)
    every_model = [p for p in callers if ALL_MODELS in rules[p].models]
    if admins:
        policies["admins"] = {"permissions": [{"any": True}], "principals": [_principal(p) for p in admins]}
    if readers:
        policies["records-readers"] = {"permissions": [{"url_path": {"path": {"exact": p}}} for p in RECORDS_PATHS],
                                       "principals": [_principal(p) for p in readers]}
    if security.authenticates:  # the console: any principal reaches it; the router shows each what its rules allow
        policies["console"] = {"permissions": [{"url_path": {"path": {"prefix": CONSOLE_PREFIX}}}],
                               "principals": [{"header": {"name": PRINCIPAL_HEADER, "present_match": True}}]}
        # Its login page and logging out: static files and a cookie cleared, no data.
        policies["console-login"] = {"permissions": [{"url_path": {"path": {"prefix": LOGIN_PREFIX}}},
                                                     {"url_path": {"path": {"exact": LOGOUT_PATH}}}],
                                     "principals": [{"any": True}]}
    if not security.authenticates:
        inference_principals = [{"any": True}]
    elif not rules:
        inference_principals = [{"header": {"name": PRINCIPAL_HEADER, "present_match": True}}]
    else:
        inference_principals = [_principal(p) for p in every_model]
    if inference_principals:
        policies["inference"] = {"permissions": [{"not_rule": control}], "principals": inference_principals}
    for principal in callers:
        if principal not in every_model:
            policies[f"models:{principal}"] = {"permissions": [_models_permission(sorted(rules[principal].models),
                                                                                   control)],
                                               "principals": [_principal(principal)]}
    return {"name": "envoy.filters.http.rbac", "typed_config": {
        "@type": RBAC, "rules": {"action": "ALLOW", "policies": policies}}}


def _models_permission(models: list[str], control: dict[str, Any]) -> dict[str, Any]:
    """An inference to one of MODELS (the model header the front set from a ModelInfer's body or a
    REST inference's path), or any other call that is not the control API: the router checks
    those that name a model elsewhere (metadata, streams) itself."""
    model_call = {"header": {"name": MODEL_HEADER, "present_match": True}}
    allowed = [{"header": {"name": MODEL_HEADER, "string_match": {"exact": m}}} for m in models]
    return {"or_rules": {"rules": [
        {"or_rules": {"rules": allowed}},
        {"and_rules": {"rules": [{"not_rule": control}, {"not_rule": model_call}]}},
    ]}}


def _to_login_page() -> dict[str, Any]:
    """The front's answer when a browser without credentials (or with a stale cookie) opens the
    console's page: a redirect to the login page rather than a bare 401."""
    return {
        "filter": {"and_filter": {"filters": [
            {"status_code_filter": {"comparison": {"op": "EQ", "value": {
                "default_value": 401, "runtime_key": "meshserve.console_login_status"}}}},
            {"header_filter": {"header": {"name": ":path", "string_match": {"safe_regex": {
                "regex": CONSOLE_PAGE_PATHS}}}}}]}},
        "status_code": 302,
        "headers_to_add": [{"header": {"key": "location", "value": LOGIN_PREFIX},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
        "body_format_override": {"text_format_source": {"inline_string": f"log in at {LOGIN_PREFIX}\n"}},
    }


def refused_model_mappers() -> list[dict[str, Any]]:
    """The front's answers when the per-model rules refuse an inference: PERMISSION_DENIED (REST:
    403 with the binding's JSON error) naming the principal and the model, as the router says
    for the calls it checks."""
    message = (f"principal '%REQ({PRINCIPAL_HEADER})%' may not call model '%REQ({MODEL_HEADER})%'; ask an "
               "operator to add it to security.principals in meshserve.yaml")
    refused = [{"status_code_filter": {"comparison": {"op": "EQ", "value": {
                   "default_value": 403, "runtime_key": "meshserve.rbac_status"}}}},
               {"header_filter": {"header": {"name": MODEL_HEADER, "present_match": True}}}]
    grpc_call = {"header_filter": {"header": {"name": "content-type",
                                              "string_match": {"prefix": "application/grpc"}}}}
    return [
        {"filter": {"and_filter": {"filters": [*refused, grpc_call]}},
         "body_format_override": {"text_format_source": {"inline_string": message}}},
        {"filter": {"and_filter": {"filters": refused}},
         "body_format_override": {"json_format": {"error": message}, "content_type": "application/json"}},
    ]


def internal_upstream(cluster: dict[str, Any], spec: DeploymentSpec, alpn: str = "h2",
                      mesh_secret: str = "") -> dict[str, Any]:
    """CLUSTER (the router's, or a variant's) connecting with mutual TLS when the spec asks for
    internal TLS: Envoy shows the internal certificate and checks the peer's against the CA.
    Health checks use the same transport, and carry the MESH_SECRET the servers ask of every call
    (requests get it from the routes). ALPN: h2 for gRPC, http/1.1 for the router's REST listener."""
    tls = spec.security.internal_tls
    if tls is not None:
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": UPSTREAM_TLS, "common_tls_context": _internal_context(tls, alpn)}}
    if mesh_secret:
        header = [{"header": {"key": MESH_SECRET_HEADER, "value": MESH_SECRET_VALUE}}]
        for check in cluster.get("health_checks", ()):
            if "grpc_health_check" in check:
                check["grpc_health_check"] = {**check["grpc_health_check"], "initial_metadata": header}
            if "http_health_check" in check:
                check["http_health_check"] = {**check["http_health_check"], "request_headers_to_add": header}
    return cluster


def secure_mesh(listener: dict[str, Any], spec: DeploymentSpec, mesh_secret: str = "") -> dict[str, Any]:
    """The mesh LISTENER (router -> adapters) requiring the internal certificate from its callers,
    or the MESH_SECRET on every call: it sends on to the adapters with the secret, so a caller
    without it would get through it what it cannot get from the adapters directly."""
    tls = spec.security.internal_tls
    if tls is not None:
        listener["filter_chains"][0]["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": TLS_CONTEXT, "common_tls_context": _internal_context(tls), "require_client_certificate": True}}
    if mesh_secret:
        # api_key_auth rather than an RBAC header match: Envoy leaves its keys out of the admin
        # interface's config dump, which any local process can read. A name of its own, because
        # the shared routes turn the front's api_key_auth off by name where clients need no key.
        manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
        manager["http_filters"].insert(0, {"name": "meshserve.mesh_secret", "typed_config": {
            "@type": API_KEY_AUTH, "credentials": [{"key": mesh_secret, "client": "mesh"}],
            "key_sources": [{"header": MESH_SECRET_HEADER}]}})
        # Refused as the router and adapters refuse such a caller: UNAUTHENTICATED, saying where to call.
        manager.setdefault("local_reply_config", {}).setdefault("mappers", []).append({
            "filter": {"status_code_filter": {"comparison": {"op": "EQ", "value": {
                "default_value": 401, "runtime_key": "meshserve.mesh_secret_status"}}}},
            "body_format_override": {"text_format_source": {"inline_string": REFUSAL}}})
    return listener


def _internal_context(tls, alpn: str = "h2") -> dict[str, Any]:
    return {
        "alpn_protocols": [alpn],  # gRPC servers refuse a TLS connection that did not choose h2
        "tls_certificates": [{"certificate_chain": {"filename": tls.certificate}, "private_key": {"filename": tls.private_key}}],
        "validation_context": {"trusted_ca": {"filename": tls.ca}},
    }
