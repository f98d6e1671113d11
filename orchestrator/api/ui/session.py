"""The dashboard's gate: sessions, login, CSRF, roles, resource group and security headers.

Owns: the login (a bearer token, checked like the API's, exchanged for an opaque session id in an
HttpOnly, SameSite=Strict cookie; or a one-time code minted by ``orchestrator ui``), the session
store (in memory: a server restart logs everyone out), re-checking the session's token on every
request (a revoked token ends its sessions within :data:`TOKEN_TTL`), CSRF (a per-session secret
that every POST must carry, compared in constant time, plus a same-origin check; the login form
gets a double-submit cookie), the roles of the REST API (GET needs read, POST run, the git pages
admin without a group limit), the body cap and form parsing of POSTs, and the security headers of
every answer (a Content-Security-Policy allowing scripts, styles, fetches and images from this
origin only, no framing). Must not import routes of the REST API.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.control import tokens

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PREFIX = "/ui"
COOKIE = "orch_ui"
LOGIN_COOKIE = "orch_ui_login"
IDLE = 12 * 3600  # a session unused this long ends
ONCE_TTL = 600  # a one-time login code is good for this long, once
TOKEN_TTL = 1.0  # seconds a session's token check is trusted without the store
MAX_SESSIONS = 10_000
BODY_CAP = 64 * 1024
BODY_TIMEOUT = 10.0  # seconds for a whole POST body
PUBLIC = ("/ui/login", "/ui/login/once", "/ui/static/")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
           (b"cross-origin-opener-policy", b"same-origin")]


@dataclass
class Session:
    sid: str
    csrf: str
    role: str
    token_rg: str | None  # the token's group limit (None: every group)
    rg: str
    name: str
    digest: str | None  # sha256 of the token it came from (None: a one-time local login)
    seen: float = field(default_factory=time.monotonic)
    checked: float = 0.0


class Sessions:
    """Sessions and one-time codes, in memory."""

    def __init__(self) -> None:
        self.by_id: dict[str, Session] = {}
        self.once: dict[str, tuple[float, str]] = {}  # sha256(code) -> (expiry, default group)

    def create(self, *, role: str, token_rg: str | None, rg: str, name: str, digest: str | None) -> Session:
        if len(self.by_id) >= MAX_SESSIONS:
            self.expire()
            if len(self.by_id) >= MAX_SESSIONS:
                oldest = min(self.by_id.values(), key=lambda s: s.seen)
                self.by_id.pop(oldest.sid, None)
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), role, token_rg, rg, name, digest)
        self.by_id[tokens.digest(s.sid)] = s
        return s

    def get(self, sid: str) -> Session | None:
        s = self.by_id.get(tokens.digest(sid)) if sid and len(sid) < 100 else None
        if s is None or time.monotonic() - s.seen > IDLE:
            return None
        s.seen = time.monotonic()
        return s

    def drop(self, sid: str) -> None:
        self.by_id.pop(tokens.digest(sid), None)

    def expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self.by_id.items() if now - s.seen > IDLE]:
            self.by_id.pop(key, None)

    def mint_once(self, rg: str) -> str:
        """A code that logs in once, within :data:`ONCE_TTL`, as the local administrator."""
        code = secrets.token_urlsafe(32)
        self.once[tokens.digest(code)] = (time.monotonic() + ONCE_TTL, rg)
        return code

    def redeem_once(self, code: str) -> str | None:
        hit = self.once.pop(tokens.digest(code), None) if code and len(code) < 100 else None
        return hit[1] if hit and hit[0] > time.monotonic() else None


def cookies(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope["headers"]:
        if k == b"cookie":
            for part in v.decode("latin-1").split(";"):
                name, _, value = part.strip().partition("=")
                out.setdefault(name, value)
    return out


def header(scope: Scope, name: bytes) -> str:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return ""


def needed_role(path: str, method: str) -> str:
    if method in ("GET", "HEAD") or path in ("/ui/logout", "/ui/rg"):
        return "read"
    return "run"


class UiGate:
    """ASGI middleware in front of the dashboard's routes (every path under ``/ui``)."""

    def __init__(self, app: Any, svc: Any, sessions: Sessions) -> None:
        self.app = app
        self.svc = svc
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        started = time.perf_counter()

        async def send_secured(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                have = {k for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in have]
                # the server's own time for this answer (bench/bench_ui.py and devtools read it)
                extra.append((b"server-timing", f"app;dur={(time.perf_counter() - started) * 1000:.2f}".encode()))
                if not path.startswith("/ui/static/"):
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        state = scope.setdefault("state", {})
        state["ui_sessions"] = self.sessions
        if method not in ("GET", "HEAD", "POST"):
            await plain(send_secured, 405, "method not allowed")
            return
        if method == "POST":
            problem = self._origin(scope)
            if problem:
                await plain(send_secured, 403, problem)
                return
            body = await self._body(receive, scope)
            if body is None:
                await plain(send_secured, 413, f"request body over {BODY_CAP} bytes, not a form, or not sent "
                            f"within {BODY_TIMEOUT:g} s")
                return
            try:
                fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), max_num_fields=200)
            except ValueError:
                await plain(send_secured, 400, "too many form fields")
                return
            state["form"] = {k: v[0] for k, v in fields.items()}  # routes read this, never the body
        public = path in PUBLIC[:2] or path.startswith(PUBLIC[2])
        if public:
            if method == "POST" and path == "/ui/login":
                pre = cookies(scope).get(LOGIN_COOKIE, "")
                if not pre or not hmac.compare_digest(pre, state["form"].get("csrf", "")):
                    await plain(send_secured, 403, "the login form expired; reload the page and log in again")
                    return
            await self.app(scope, receive, send_secured)
            return
        session = self.sessions.get(cookies(scope).get(COOKIE, ""))
        if session is not None and not self._token_alive(session):
            self.sessions.drop(cookies(scope).get(COOKIE, ""))
            session = None
        if session is None:
            if method == "GET" and not path.endswith(".json") and not header(scope, b"hx-request"):
                target = urllib.parse.quote(path + ("?" + scope["query_string"].decode("latin-1")
                                                    if scope["query_string"] else ""), safe="")
                await redirect(send_secured, f"/ui/login?next={target}")
            else:
                await plain(send_secured, 401, "log in first")
            return
        if method == "POST":
            sent = state["form"].get("csrf", "") or header(scope, b"x-csrf-token")
            if not sent or not hmac.compare_digest(sent, session.csrf):
                await plain(send_secured, 403, "missing or wrong CSRF token; reload the page")
                return
        need = needed_role(path, method)
        if not tokens.allows(session.role, need):
            await plain(send_secured, 403, f"your token has role {session.role!r}; {need!r} is needed")
            return
        state["ui"] = session
        await self.app(scope, receive, send_secured)

    def _token_alive(self, s: Session) -> bool:
        if s.digest is None:
            return True
        now = time.monotonic()
        if now - s.checked < TOKEN_TTL:
            return True
        row = self.svc.store.token_by_hash(s.digest)
        if row is None or row["kind"] == "tracking":
            return False
        s.checked = now
        return True

    @staticmethod
    def _origin(scope: Scope) -> str:
        """A POST from another origin is refused (the cookie is SameSite=Strict too)."""
        origin = header(scope, b"origin")
        host = header(scope, b"host")
        if origin and origin != "null" and urllib.parse.urlsplit(origin).netloc != host:
            return "cross-origin request refused"
        if header(scope, b"sec-fetch-site") not in ("", "same-origin", "none"):
            return "cross-site request refused"
        return ""

    @staticmethod
    async def _body(receive: Receive, scope: Scope) -> bytes | None:
        ctype = header(scope, b"content-type").split(";")[0].strip().lower()
        chunks, size = [], 0
        deadline = time.monotonic() + BODY_TIMEOUT
        while True:
            try:  # a client that trickles its body is dropped (as the API's gate does)
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > BODY_CAP:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if body and ctype != "application/x-www-form-urlencoded":
            return None
        return body


async def plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def redirect(send: Send, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def session_cookie(sid: str, max_age: int | None = IDLE) -> str:
    age = f"; Max-Age={max_age}" if max_age is not None else ""
    return f"{COOKIE}={sid}; Path=/ui; HttpOnly; SameSite=Strict{age}"
