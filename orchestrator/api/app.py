"""The FastAPI application: the gate every request passes, error mapping, and router wiring.

Owns: :func:`create_app`; the pure-ASGI :class:`Gate` (bearer token → role → resource group,
request body cap → 413, a body not complete within :data:`BODY_TIMEOUT` → 408, content type →
415, hostile JSON (duplicate keys too) → 400, all before FastAPI sees the request; the
unauthenticated liveness probe ``GET /healthz`` and API description ``GET /openapi.json``;
no HTML docs page: Swagger UI would load third-party script on the dashboard's origin); and the
mapping of every exception to the AI API error body
``{"error": {"code", "message", ...}}`` — a stack trace never reaches a client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.api import wire
from orchestrator.api.responses import error_response
from orchestrator.control import tokens
from orchestrator.control.service import Service
from orchestrator.errors import NotFound, OrchestratorError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

log = logging.getLogger("orchestrator.api")
DEFAULT_BODY_CAP = 8 * 1024 * 1024
JSON_TYPES = ("application/json", "application/merge-patch+json")
OPEN_PATHS = ("/oauth/token",)  # authenticates its own client credentials
RG_FREE = ("/v2/lm/meta", "/v2/lm/healthz")
INFERENCE = "/v2/inference/"  # deployments' traffic: token and AI-Resource-Group checked, body passed as is
# Admin objects of the whole tenant: a token limited to one resource group never reaches them.
TENANT_WIDE = ("/v2/admin/resourceGroups", "/v2/admin/repositories", "/v2/admin/applications")
POLLED = ("/v2/lm/healthz", "/v2/lm/executions", "/v2/inference/")  # routes matched first (see create_app)
HOT = ("/v2/lm/executions/$count", "/v2/lm/executions/{execution_id}", "/v2/lm/healthz")  # polled GETs, in order
GATE_HEADERS = frozenset((b"authorization", b"ai-resource-group", b"ai-tenant-scope", b"content-type",
                          b"content-length"))
LIVENESS = "/healthz"  # unauthenticated liveness probe at the root (/v2/lm/healthz is the authenticated one)
# The API's description (no data): GET without a token. No /docs or /redoc: FastAPI's pages load their
# script from a CDN (unpinned, no SRI) onto the origin of /ui, and nothing may download at run time.
PUBLIC_DOCS = ("/openapi.json",)
UI = "/ui"  # the web dashboard (orchestrator.api.ui), authenticated by its own session cookie
BODY_TIMEOUT = float(os.environ.get("ORCHESTRATOR_HTTP_BODY_TIMEOUT", "10"))  # whole body, from its first read
CACHE_TTL = 1.0  # seconds a verified token (or, for reads, a resource group) is trusted without the store
CACHE_MAX = 4096


async def _send_error(send: Send, status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
    body = wire.dumps(wire.error_body(code, message, request_id=secrets.token_hex(8)))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Gate:
    """Authentication, authorization, resource group and body checks, as one ASGI layer."""

    def __init__(self, app: Any, svc: Service, body_cap: int) -> None:
        self.app = app
        self.svc = svc
        self.body_cap = body_cap
        # sha256 of a token -> (monotonic expiry, principal); resource group -> monotonic expiry.
        # Only positive answers are cached, for CACHE_TTL: a revoked token or deleted group stops
        # working within that time, a new one works at once.
        self._principals: dict[str, tuple[float, dict[str, Any]]] = {}
        self._groups: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path == LIVENESS:
            await _liveness(method, send)
            return
        if path in PUBLIC_DOCS and method in ("GET", "HEAD"):  # what a browser opens from the serve banner
            await self.app(scope, receive, send)
            return
        if path == UI or path.startswith(UI + "/"):  # the dashboard: its own gate (session cookie, CSRF), api/ui
            await self.app(scope, receive, send)
            return
        headers = {}
        for k, v in scope["headers"]:  # only what the gate reads; ASGI names are lower-case bytes
            if k in GATE_HEADERS:
                name = k.decode("latin-1")
                if name in headers:  # the gate and a handler must never read different copies
                    await _send_error(send, 400, "INVALID_REQUEST", f"header {name} appears more than once")
                    return
                headers[name] = v.decode("latin-1")
        state = scope.setdefault("state", {})
        if path.startswith("/tracking/"):
            problem = self._capability(path)
            if problem:
                await _send_error(send, *problem)
                return
        elif path not in OPEN_PATHS:
            problem = self._authorize(path, method, headers, state)
            if problem:
                await _send_error(send, *problem)
                return
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            body = await self._read_body(receive, headers, send)
            if body is None:
                return
            if body:
                ctype = headers.get("content-type", "").split(";")[0].strip().lower()
                form = path in OPEN_PATHS and ctype == "application/x-www-form-urlencoded"
                if not form and ctype not in JSON_TYPES and not path.startswith(INFERENCE):
                    await _send_error(send, 415, "UNSUPPORTED_MEDIA_TYPE",
                                      f"content type {ctype or 'none'!r} is not accepted; send application/json")
                    return
                if not form and not path.startswith(INFERENCE):
                    try:
                        state["json"] = wire.parse_json(body)
                    except wire.BadRequest as exc:
                        await _send_error(send, 400, exc.code, exc.message)
                        return
            receive = _replay(body)
        await self.app(scope, receive, send)

    def _capability(self, path: str) -> tuple[int, str, str, dict[str, str]] | None:
        """``/tracking/<capability>/...``: the path segment is the credential (checked before the body)."""
        cap = tokens.lookup(self.svc.store, path.split("/", 3)[2])
        if cap is None or cap["kind"] != "tracking":
            return 401, "UNAUTHORIZED", "invalid tracking endpoint", {
                "WWW-Authenticate": 'Bearer realm="orchestrator", error="invalid_token"'}
        return None

    def _authorize(self, path: str, method: str, headers: dict[str, str],
                   state: dict[str, Any]) -> tuple[int, str, str, dict[str, str]] | None:
        challenge = {"WWW-Authenticate": 'Bearer realm="orchestrator"'}
        auth = headers.get("authorization", "")
        scheme, _, presented = auth.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return 401, "UNAUTHORIZED", "a bearer token is required (Authorization: Bearer <token>)", challenge
        principal = self._principal(presented.strip())
        if principal is None or principal["kind"] == "tracking":
            return 401, "UNAUTHORIZED", "invalid, expired or revoked token", {
                "WWW-Authenticate": 'Bearer realm="orchestrator", error="invalid_token"'}
        needed = "admin" if path.startswith("/v2/admin") else "read" if method in ("GET", "HEAD") else "run"
        if not tokens.allows(principal["role"], needed):
            return 403, "FORBIDDEN", f"this token has role {principal['role']!r}; {needed!r} is needed", {}
        state["principal"] = principal
        if principal["rg"] and path.startswith("/v2/admin"):
            # A token limited to a group administers that group's secrets only: nothing tenant-wide.
            tenant_wide = path.startswith(TENANT_WIDE) or headers.get("ai-tenant-scope", "").lower() == "true"
            if tenant_wide or headers.get("ai-resource-group", "") != principal["rg"]:
                return 403, "FORBIDDEN", f"this token is limited to resource group {principal['rg']!r}", {}
        if (path.startswith("/v2/lm/") or path.startswith(INFERENCE)) and not path.startswith(RG_FREE):
            rg = headers.get("ai-resource-group", "")
            if not rg:
                return 400, "MISSING_RESOURCE_GROUP", "header AI-Resource-Group is required", {}
            if principal["rg"] and principal["rg"] != rg:
                return 403, "FORBIDDEN", f"this token is not valid for resource group {rg!r}", {}
            if not self._group_exists(rg, cached=method in ("GET", "HEAD")):
                return 404, "NOT_FOUND", f"resource group {rg!r} not found", {}
            state["rg"] = rg
        return None

    def _principal(self, presented: str) -> dict[str, Any] | None:
        """:func:`tokens.lookup`, remembered for CACHE_TTL seconds per token digest."""
        now = time.monotonic()
        key = tokens.digest(presented)
        hit = self._principals.get(key)
        if hit is not None and hit[0] > now:
            principal = hit[1]
            expires = principal["expires_at"]
            return principal if expires is None or expires >= time.time() else None
        principal = tokens.lookup(self.svc.store, presented)
        if principal is None:
            self._principals.pop(key, None)
            return None
        if len(self._principals) >= CACHE_MAX:
            self._principals.clear()
        self._principals[key] = (now + CACHE_TTL, dict(principal))
        return self._principals[key][1]

    def _group_exists(self, rg: str, *, cached: bool) -> bool:
        """Whether ``rg`` exists; reads may trust an answer up to CACHE_TTL old, writes never do
        (nothing is created in a group deleted a moment ago)."""
        now = time.monotonic()
        if cached and self._groups.get(rg, 0.0) > now:
            return True
        try:
            self.svc.store.get_resource_group(rg)
        except NotFound:
            self._groups.pop(rg, None)
            return False
        if len(self._groups) >= CACHE_MAX:
            self._groups.clear()
        self._groups[rg] = now + CACHE_TTL
        return True

    async def _read_body(self, receive: Receive, headers: dict[str, str], send: Send) -> bytes | None:
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.body_cap:
            await _send_error(send, 413, "PAYLOAD_TOO_LARGE", f"request body over {self.body_cap} bytes")
            return None
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + BODY_TIMEOUT
        while True:
            try:  # a client that trickles its body is dropped: it holds a connection and a task
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:  # asyncio's, the builtin since 3.11
                await _send_error(send, 408, "REQUEST_TIMEOUT", f"the request body was not complete within "
                                  f"{BODY_TIMEOUT:g} s", {"Connection": "close"})
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.body_cap:
                await _send_error(send, 413, "PAYLOAD_TOO_LARGE", f"request body over {self.body_cap} bytes")
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


async def _liveness(method: str, send: Send) -> None:
    """``GET /healthz``: the process answers. No token, no store, nothing about the server."""
    if method not in ("GET", "HEAD"):
        await _send_error(send, 405, "METHOD_NOT_ALLOWED", "Method Not Allowed", {"Allow": "GET, HEAD"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"15"),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else b'{"status":"OK"}'})


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _route_rank(route: Any) -> tuple[int, int]:
    """Where a route goes in the scan: the polled GETs (:data:`HOT`, in that order), then the rest
    of :data:`POLLED`, then everything else."""
    path = str(getattr(route, "path", ""))
    if path in HOT and "GET" in (getattr(route, "methods", None) or ()):
        return 0, HOT.index(path)
    return (1 if path.startswith(POLLED) else 2), 0


def create_app(svc: Service, *, body_cap: int = DEFAULT_BODY_CAP, tracking_base: str = "") -> FastAPI:
    """The AI API v2 app over ``svc``. ``tracking_base`` (``http://host:port``) enables the
    per-execution tracking endpoint given to steps the server runs."""
    from orchestrator.api import routes_admin, routes_catalog, routes_executions, routes_git, routes_models
    from orchestrator.api import routes_deployments, routes_inference

    app = FastAPI(title="orchestrator AI API v2", version="2", description="SAP AI API v2, served locally",
                  openapi_url="/openapi.json", docs_url=None, redoc_url=None)
    app.state.svc = svc
    app.state.scoped_views = {}
    if tracking_base:  # steps of executions this server starts (API, scheduler) report here
        svc.tracking_base = tracking_base

    @app.exception_handler(OrchestratorError)
    async def _domain(request: Request, exc: OrchestratorError) -> Response:
        message = exc.message if not exc.hint else f"{exc.message} ({exc.hint})"
        return error_response(exc.http_status, exc.code, message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
        return error_response(400, "INVALID_REQUEST", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "INTERNAL_ERROR", "internal error; see the server log")

    # The routers' routes already carry their prefix and error responses. Adding them to the app's
    # own router (rather than ``include_router``) keeps route matching a flat scan: FastAPI 0.16x
    # resolves included routers per request, which cost more than half of a small GET. The scan
    # costs about a microsecond per route, so what clients poll comes first (ahead of FastAPI's own
    # /openapi.json too): the sort is stable, and the only polled paths that match
    # another route's pattern keep their order (``$count`` before ``{execution_id}``).
    from orchestrator.api import routes_sweeps

    from orchestrator.api import routes_registry

    modules = (routes_catalog, routes_executions, routes_admin, routes_git, routes_models, routes_deployments,
               routes_inference, routes_sweeps, routes_registry)
    app.router.routes.extend(r for module in modules for r in module.router.routes)
    app.router.routes.sort(key=_route_rank)
    from orchestrator.api import ui

    ui.mount(app, svc)  # last: every /ui path, after the API's routes
    app.add_middleware(Gate, svc=svc, body_cap=body_cap)
    routes_deployments.resume(svc)  # deployments whose manager stopped (a reboot) start again
    return app
