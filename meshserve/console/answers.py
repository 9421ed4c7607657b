"""How the console answers: JSON (or its pages) with headers that keep the pages to the console's
own files, and the refusal every console route gives a viewer without console rights."""

from __future__ import annotations

import orjson
from aiohttp import web

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
KEEP_OUT = ("the console is for admins and records readers of this mesh; ask an operator to give your principal "
            "admin or records in security.principals of meshserve.yaml, or open it from a control_from address")


def answer(document: object, status: int = 200) -> web.Response:
    body = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str)
    return web.Response(body=body, status=status, content_type="application/json", headers=SECURITY_HEADERS)


def refused(status: int, message: str) -> web.Response:
    return answer({"error": message}, status)


def file_answer(path, content_type: str, cache: bool = False) -> web.Response:
    """The console's file at PATH, with the security headers (kept by the browser a while when CACHE)."""
    headers = {**SECURITY_HEADERS, "Cache-Control": "max-age=300"} if cache else SECURITY_HEADERS
    return web.Response(body=path.read_bytes(), content_type=content_type, headers=headers)
