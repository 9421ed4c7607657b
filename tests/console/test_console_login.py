"""The console's login endpoints as the router serves them behind Envoy's front: the cookie a login
sets (HttpOnly, SameSite=Strict, Path=/console, Secure behind TLS, no longer than a token lasts),
what logging in and out refuse, and a mesh without authentication left as it was. Envoy's part
(which requests carry which credential, from which cookie) is in test_console.py, through a real
front, and tests/security/test_front_config.py."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from meshserve.console.routes import add_console
from meshserve.console.session import SESSION_S, token_lifetime
from meshserve.core.mesh_protocol import CONSOLE_KEY_COOKIE, CONSOLE_TOKEN_COOKIE, PRINCIPAL_HEADER
from meshserve.spec.security_spec import SecuritySpec

KEY = "ops-key-0123456789abcdef"
JSON = {"Content-Type": "application/json"}
SECURED = dict(api_keys_file="api-keys.yaml", jwt={"issuer": "https://login.test", "jwks_file": "jwks.json"},
               principals={"ops": {"admin": True}, "scorer": {"models": ["*"]}})


def call(security: SecuritySpec, method: str, path: str, **kwargs):
    """(status, headers, text) of one request to the console's routes for a mesh with SECURITY."""
    async def go():
        app = web.Application()
        add_console(app, SimpleNamespace(security=security))  # the login endpoints read only the spec
        async with TestClient(TestServer(app)) as client:
            response = await client.request(method, path, allow_redirects=False, **kwargs)
            return response.status, response.headers, await response.text()
    return asyncio.run(go())


def log_in(security: SecuritySpec, headers: dict[str, str], principal: str = "ops", body: str = "{}"):
    """Logging in as the front forwards it: the principal it verified, the credential's header."""
    return call(security, "POST", "/console/session", data=body,
                headers={"Content-Type": "application/json", PRINCIPAL_HEADER: principal, **headers})


def jwt(expires_in: float) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"sub": "ops", "exp": time.time() + expires_in}).encode())
    return f"eyJhbGciOiJIUzI1NiJ9.{claims.decode().rstrip('=')}.c2lnbmF0dXJl"


def test_a_login_keeps_the_key_in_a_cookie_only_the_console_gets_and_only_over_tls_behind_tls():
    status, headers, text = log_in(SecuritySpec(**SECURED), {"x-api-key": KEY})
    assert status == 200 and json.loads(text)["may_change"] is True
    kept, cleared = headers.getall("Set-Cookie")
    assert kept == f"{CONSOLE_KEY_COOKIE}={KEY}; Path=/console; Max-Age={SESSION_S}; HttpOnly; SameSite=Strict"
    assert cleared.startswith(f"{CONSOLE_TOKEN_COOKIE}=;") and "Max-Age=0" in cleared  # one way in at a time
    behind_tls = SecuritySpec(**SECURED, tls={"certificate": "front.pem", "private_key": "front.key"})
    _, headers, _ = log_in(behind_tls, {"x-api-key": KEY})
    assert all(c.endswith("; Secure") for c in headers.getall("Set-Cookie"))


def test_a_token_is_kept_no_longer_than_it_is_valid():
    token = jwt(600)
    status, headers, _ = log_in(SecuritySpec(**SECURED), {"Authorization": f"Bearer {token}"})
    assert status == 200 and headers.getall("Set-Cookie")[0].startswith(f"{CONSOLE_TOKEN_COOKIE}={token}; ")
    assert 590 <= token_lifetime(token, time.time()) <= 600
    assert token_lifetime(jwt(30 * 86400), time.time()) == SESSION_S
    # Without API keys in the spec, an x-api-key header was checked by nothing: never kept.
    jwt_only = SecuritySpec(jwt=SECURED["jwt"], principals=SECURED["principals"])
    status, _, text = log_in(jwt_only, {"x-api-key": KEY})
    assert status == 400 and "Authorization: Bearer TOKEN" in text


def test_logging_in_refuses_what_it_cannot_or_must_not_keep():
    secured = SecuritySpec(**SECURED)
    cases = [
        ({"x-api-key": KEY}, "scorer", "{}", 403, "admins and records readers"),
        ({"x-api-key": "a key; with=odd characters"}, "ops", "{}", 400, "a cookie cannot carry"),
        ({}, "ops", "{}", 400, "x-api-key: KEY or Authorization: Bearer TOKEN"),
        ({"x-api-key": KEY, "Origin": "http://elsewhere.example"}, "ops", "{}", 403, "console's own page"),
        ({"x-api-key": KEY, "Content-Type": "text/plain"}, "ops", "{}", 400, "Content-Type: application/json"),
    ]
    for headers, principal, body, code, words in cases:
        status, answer, text = log_in(secured, headers, principal, body)
        assert (status, words in text, "Set-Cookie" in answer) == (code, True, False), (headers, status, text)


def test_logging_out_clears_both_cookies_but_only_for_the_consoles_own_page():
    secured = SecuritySpec(**SECURED)
    status, headers, _ = call(secured, "POST", "/console/logout", data="{}", headers=JSON)
    assert status == 200 and sorted(c.split("=")[0] for c in headers.getall("Set-Cookie")) == sorted(
        [CONSOLE_KEY_COOKIE, CONSOLE_TOKEN_COOKIE])
    assert all("Max-Age=0" in c for c in headers.getall("Set-Cookie"))
    status, headers, _ = call(secured, "POST", "/console/logout", data="{}",
                              headers={**JSON, "Origin": "http://elsewhere.example"})
    assert status == 403 and "Set-Cookie" not in headers


def test_the_login_page_is_static_and_public_and_a_mesh_without_authentication_needs_none():
    status, headers, text = call(SecuritySpec(**SECURED), "GET", "/console/login")
    assert status == 200 and 'id="credential"' in text and "default-src 'none'" in headers["Content-Security-Policy"]
    assert call(SecuritySpec(**SECURED), "GET", "/console/login/login.js")[0] == 200
    assert call(SecuritySpec(**SECURED), "GET", "/console/login/index.html")[0] == 404  # only its own files
    open_mesh = SecuritySpec()
    status, headers, _ = call(open_mesh, "GET", "/console/login")
    assert status == 302 and headers["Location"] == "/console/"
    # A trusted peer (loopback) is the console's admin as before, and is offered no log-out.
    status, _, text = call(open_mesh, "GET", "/console/api/me")
    assert status == 200 and json.loads(text)["may_change"] and not json.loads(text)["may_log_out"]
    status, _, text = call(open_mesh, "POST", "/console/session", data="{}", headers=JSON)
    assert status == 400 and "no authentication" in text
