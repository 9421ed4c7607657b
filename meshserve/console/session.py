"""Logging in to the console from a plain browser, on a mesh with authentication.

A browser sends no credential headers of its own, so the console keeps the person's API key or
bearer token in a cookie, which Envoy's front checks on the console's paths only, as it checks
the headers (envoy/security.py); inferences and the control API never take it.

    GET  /console/login            the login page and its files (public: static, no data)
    POST /console/session          log in: the page sends the credential once in its header
                                   (x-api-key, or Authorization: Bearer); Envoy checks it as on any
                                   console call and forwards it here, and the answer sets the cookie
    POST /console/logout           log out: the cookies cleared (public)

The cookie is HttpOnly (no script of any page reads it), SameSite=Strict (a request another site
starts never carries it), scoped to Path=/console, Secure when the front serves TLS, and lives at
most SESSION_S (a token: no longer than it is valid). Logging in and out are JSON from the
console's own origin, as every change is (requests.json_body).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from aiohttp import web

from meshserve.console.access import Viewer
from meshserve.console.answers import answer, file_answer, refused
from meshserve.console.requests import BadRequest, json_body
from meshserve.core.mesh_protocol import CONSOLE_KEY_COOKIE, CONSOLE_TOKEN_COOKIE
from meshserve.spec.security_spec import SecuritySpec

STATIC = Path(__file__).parent / "static"
LOGIN_FILES = {"login.js": "text/javascript", "console.css": "text/css"}
COOKIE_PATH = "/console"
SESSION_S = 8 * 3600  # a person logs in again after a working day
# What a cookie value may hold unquoted (RFC 6265 cookie-octet); credentials are sent as they are.
COOKIE_VALUE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{1,3800}$")


def cookie(name: str, value: str, max_age: int, secure: bool) -> str:
    """A Set-Cookie value for the console's login cookie NAME (max_age 0 clears it)."""
    return (f"{name}={value}; Path={COOKIE_PATH}; Max-Age={max(0, max_age)}; HttpOnly; SameSite=Strict"
            + ("; Secure" if secure else ""))


def token_lifetime(token: str, now: float) -> int:
    """Seconds until TOKEN (a JWT Envoy has just verified) expires, at most SESSION_S."""
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        expires = float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError, binascii.Error, orjson.JSONDecodeError):
        return SESSION_S
    return int(min(SESSION_S, expires - now))


class ConsoleSession:
    def __init__(self, security: SecuritySpec, viewer: Callable[[web.Request], Viewer]):
        self.security = security
        self.viewer = viewer
        self.secure = security.tls is not None  # the front serves TLS: the browser sends the cookie over TLS only

    async def page(self, request: web.Request) -> web.StreamResponse:
        if not self.security.authenticates:  # nothing to log in to: the console decides by address
            raise web.HTTPFound("/console/")
        return file_answer(STATIC / "login.html", "text/html")

    async def file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in LOGIN_FILES:
            return refused(404, f"no login page file '{name[:60]}'")
        return file_answer(STATIC / name, LOGIN_FILES[name], cache=True)

    async def log_in(self, request: web.Request, viewer: Viewer) -> web.Response:
        """Keep the credential Envoy verified for this request (VIEWER is who it names) in the cookie."""
        if not self.security.authenticates:
            raise BadRequest("this mesh has no authentication (no security.jwt or security.api_keys_file): "
                             "open /console/ without logging in")
        await json_body(request)
        name, value, lifetime = self._credential(request)
        if not COOKIE_VALUE.match(value):
            raise BadRequest("this credential has characters a cookie cannot carry (spaces, quotes, commas, "
                             "semicolons or backslashes); use a key without them, or send it in a header")
        response = answer({**viewer.as_json(), "session_s": lifetime})
        other = CONSOLE_TOKEN_COOKIE if name == CONSOLE_KEY_COOKIE else CONSOLE_KEY_COOKIE
        response.headers.add("Set-Cookie", cookie(name, value, lifetime, self.secure))
        response.headers.add("Set-Cookie", cookie(other, "", 0, self.secure))  # one way in at a time
        return response

    def _credential(self, request: web.Request) -> tuple[str, str, int]:
        """(cookie, credential, lifetime) from the header Envoy checked. The front routes any request
        with x-api-key to api_key_auth, so that header wins; Authorization is checked only on a mesh
        with JWT (elsewhere nothing checked it, and it is ignored)."""
        key = request.headers.get("x-api-key", "")
        if key and self.security.api_keys_file is not None:
            return CONSOLE_KEY_COOKIE, key, SESSION_S
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if token and scheme.lower() == "bearer" and self.security.jwt is not None:
            return CONSOLE_TOKEN_COOKIE, token.strip(), token_lifetime(token.strip(), time.time())
        accepted = [what for what, on in (("x-api-key: KEY", self.security.api_keys_file is not None),
                                          ("Authorization: Bearer TOKEN", self.security.jwt is not None)) if on]
        raise BadRequest(f"send the credential to log in with in a header: {' or '.join(accepted)}")

    async def log_out(self, request: web.Request) -> web.Response:
        try:
            await json_body(request)
        except BadRequest as exc:
            return refused(400, str(exc))
        except PermissionError as exc:
            return refused(403, str(exc))
        response = answer({"logged_out": True})
        for name in (CONSOLE_KEY_COOKIE, CONSOLE_TOKEN_COOKIE):
            response.headers.add("Set-Cookie", cookie(name, "", 0, self.secure))
        return response
