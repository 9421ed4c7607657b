"""The console's HTTP routes, mounted on the router's REST listener under /console/.

    GET  /console/                                   the pages (one HTML shell, script and styles)
    GET  /console/api/me                             who you are and what you may do
    GET  /console/api/models                         the Models page
    GET  /console/api/models/{model}?window=&step=   a model over a window (1h by default)
    GET  /console/api/models/{model}/records?limit=&before=   its newest records (records readers)
    POST /console/api/models/{model}/rollout         {"weights", "shadows", "reason"} (admins)
    POST /console/api/models/{model}/progressive     {"action", "reason"} (admins)
    GET  /console/api/predictions?request_id=|trace_id=       one request's records (records readers)
    GET  /console/login, POST /console/session, POST /console/logout   logging in from a plain
                                                     browser on a mesh with authentication (session.py)

Every answer carries a Content-Security-Policy that allows only the console's own files, and
the pages put data into the document as text, never as markup. A change must come as JSON from
the console's own origin, so another site open in the same browser cannot make one in a trusted
peer's name (nor with the login cookie, which such a request never carries: SameSite=Strict).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from meshserve.console.access import ConsoleAccess, Viewer
from meshserve.console.answers import KEEP_OUT, SECURITY_HEADERS, answer, file_answer, refused
from meshserve.console.requests import (
    BadRequest, RolloutAction, RolloutChange, id_of, json_body, page_size_of, parsed, window_of)
from meshserve.console.session import ConsoleSession
from meshserve.console.traffic_control import ChangeRefused, act_on_rollout, set_rollout
from meshserve.console.views import ConsoleReads, NoRecords
from meshserve.core.errors import MeshError
from meshserve.core.rest_exchange import request_metadata
from meshserve.core.rest_statuses import http_status
from meshserve.router.rest.servicer_calls import HttpCallContext
from meshserve.sidecars.records.store import QueryOutOfBounds
from meshserve.v1 import control_pb2 as cpb

log = logging.getLogger("meshserve.console")

STATIC = Path(__file__).parent / "static"
FILES = {"console.js": "text/javascript", "console.css": "text/css", "charts.js": "text/javascript",
         "chart.umd.min.js": "text/javascript"}


class ConsoleRoutes:
    def __init__(self, control):
        self.control = control
        self.access = ConsoleAccess(control.security)
        self.reads = ConsoleReads(control)

    async def versions_of(self, name: str) -> list[dict]:
        """MODEL's versions as the control API's GetModel lists them (runtime, digest, ready)."""
        model = await self.control.GetModel(cpb.GetModelRequest(name=name), HttpCallContext([]))
        return [{"version": v.version, "runtime": v.runtime, "digest": v.digest, "ready": v.ready,
                 "description": v.description} for v in model.versions]

    def viewer(self, request: web.Request) -> Viewer:
        return self.access.viewer({k.lower(): v for k, v in request.headers.items()}, request.remote)

    def model_of(self, request: web.Request) -> str:
        self.control.table.model(request.match_info["model"])  # ModelNotFound naming the models served
        return request.match_info["model"]

    # -- pages and files --------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        if not self.viewer(request).may_look:
            return web.Response(text=KEEP_OUT + "\n", status=403, headers=SECURITY_HEADERS)
        return file_answer(STATIC / "index.html", "text/html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if not self.viewer(request).may_look:
            return refused(403, KEEP_OUT)
        if name not in FILES:
            return refused(404, f"no console file '{name[:60]}'")
        return file_answer(STATIC / name, FILES[name], cache=True)

    # -- reads ----------------------------------------------------------------------------------

    async def me(self, request: web.Request, viewer: Viewer) -> web.Response:
        # With authentication, the page offers to log out (the login cookie, if that is how it came).
        return answer({**viewer.as_json(), "may_log_out": self.control.security.authenticates})

    async def models(self, request: web.Request, viewer: Viewer) -> web.Response:
        return answer({"models": await self.reads.models(self.versions_of)})

    async def model(self, request: web.Request, viewer: Viewer) -> web.Response:
        name = self.model_of(request)
        page = await self.reads.model_page(name, window_of(dict(request.query)))
        page["summary"] = await self.reads.model_summary(name, self.versions_of)
        return answer(page)

    async def records(self, request: web.Request, viewer: Viewer) -> web.Response:
        self._needs(viewer.may_read_records, "records")
        name = self.model_of(request)
        limit = page_size_of(dict(request.query))
        before = _number(request.query.get("before"), "before")
        found = await self.reads.read(lambda store: store.recent_records(name, limit, before))
        return answer({"records": [_listed(r) for r in found],
                       "next_before": found[-1]["time"] if len(found) == limit else None})

    async def predictions(self, request: web.Request, viewer: Viewer) -> web.Response:
        self._needs(viewer.may_read_records, "records")
        from meshserve.sidecars.records.api import audit

        query = dict(request.query)
        if "request_id" in query:
            request_id = id_of(query["request_id"], "request_id")
            found = await self.reads.read(lambda store: audit(store, request_id))
        elif "trace_id" in query:
            trace_id = id_of(query["trace_id"], "trace_id")
            limit = page_size_of(query, 20)
            found = await self.reads.read(lambda store: [
                r for rid in dict.fromkeys(x["request_id"] for x in store.records_by_trace(trace_id, limit))
                for r in audit(store, rid)])
        else:
            raise BadRequest("give request_id (from a response's id or x-request-id) or trace_id")
        for record in found:
            if record.get("package") and not viewer.may_change:  # paths on disk are for admins
                record["package"].pop("path", None)
            record["trace_url"] = trace_url(record.get("trace_id") or "")
        return answer({"records": found})

    # -- changes --------------------------------------------------------------------------------

    async def rollout(self, request: web.Request, viewer: Viewer) -> web.Response:
        self._needs(viewer.may_change, "change")
        name = self.model_of(request)
        change = parsed(RolloutChange, await json_body(request))
        applied = await set_rollout(self.control, name, change, request_metadata(request), f"ipv4:{request.remote}")
        return answer({"model": name, **applied})

    async def progressive(self, request: web.Request, viewer: Viewer) -> web.Response:
        self._needs(viewer.may_change, "change")
        name = self.model_of(request)
        action = parsed(RolloutAction, await json_body(request))
        status = await act_on_rollout(self.control, name, action, request_metadata(request), f"ipv4:{request.remote}")
        return answer({"model": name, "status": status})

    @staticmethod
    def _needs(allowed: bool, what: str) -> None:
        if not allowed:
            raise PermissionError("only admins (or a control_from peer without a principal) may change traffic"
                                  if what == "change" else "only records readers and admins may open records")

    # -- the frame every API route runs in -------------------------------------------------------

    def api(self, handler):
        async def guarded(request: web.Request) -> web.Response:
            viewer = self.viewer(request)
            if not viewer.may_look:
                return refused(403, KEEP_OUT)
            try:
                return await handler(request, viewer)
            except BadRequest as exc:
                return refused(400, str(exc))
            except QueryOutOfBounds as exc:
                return refused(400, str(exc))
            except PermissionError as exc:
                return refused(403, str(exc))
            except ChangeRefused as exc:
                return refused(http_status(exc.code), exc.details)
            except MeshError as exc:
                return refused(http_status(exc.code), exc.message)
            except NoRecords as exc:
                return refused(409, str(exc))
            except (OSError, RuntimeError, ValueError) as exc:
                log.warning("console: %s %s failed: %s: %s", request.method, request.path, type(exc).__name__, exc)
                return refused(503, f"the records store cannot be read now ({type(exc).__name__}); retry shortly")
        return guarded

    async def unknown(self, request: web.Request) -> web.Response:
        if not self.viewer(request).may_look:
            return refused(403, KEEP_OUT)
        return refused(404, f"no console endpoint {request.method} {request.path[:100]}; see docs/observability.md")


def _number(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"{name}: '{text[:40]}' is not a time in seconds since the epoch") from None
    if not 0 <= value < 1e11:
        raise BadRequest(f"{name}: {text[:40]} is not a time in seconds since the epoch")
    return value


def _listed(record: dict) -> dict:
    keep = ("request_id", "slot", "time", "version", "role", "code", "latency_s", "trace_id")
    return {k: record.get(k) for k in keep}


def trace_url(trace_id: str) -> str | None:
    """Where Jaeger shows TRACE_ID, when the mesh's traces go to a collector (OTEL_EXPORTER_OTLP_*):
    Jaeger's UI on the collector's host, port 16686."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not trace_id or not endpoint or os.environ.get("OTEL_TRACES_EXPORTER") == "none":
        return None
    host = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}").hostname
    return f"http://{host}:16686/trace/{trace_id}" if host else None


async def _to_console(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


def add_console(app: web.Application, control) -> None:
    """Serve the console for CONTROL (the router's control servicer) on APP."""
    routes = ConsoleRoutes(control)
    session = ConsoleSession(control.security, routes.viewer)
    app.router.add_get("/console", _to_console)
    app.router.add_get("/console/login", session.page)
    app.router.add_get("/console/login/{name}", session.file)
    app.router.add_post("/console/session", routes.api(session.log_in))
    app.router.add_post("/console/logout", session.log_out)
    app.router.add_get("/console/", routes.index)
    app.router.add_get("/console/static/{name}", routes.static)
    app.router.add_get("/console/api/me", routes.api(routes.me))
    app.router.add_get("/console/api/models", routes.api(routes.models))
    app.router.add_get("/console/api/models/{model}", routes.api(routes.model))
    app.router.add_get("/console/api/models/{model}/records", routes.api(routes.records))
    app.router.add_post("/console/api/models/{model}/rollout", routes.api(routes.rollout))
    app.router.add_post("/console/api/models/{model}/progressive", routes.api(routes.progressive))
    app.router.add_get("/console/api/predictions", routes.api(routes.predictions))
    app.router.add_route("*", "/console/{rest:.*}", routes.unknown)
