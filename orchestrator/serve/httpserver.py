"""A lean HTTP/1.1 server for the predictor: one asyncio protocol, caps first, then parse.

Why not uvicorn/Starlette/Flask: a one-row predict of a small model costs ~0.1 ms, so the
per-request overhead of the stack decides the throughput. ``mlflow models serve`` (FastAPI on
uvicorn) answered 60-95 req/s at 10 connections in ``bench/bench_serve.py`` runs here. The same
router as a bare ASGI app under uvicorn (httptools + uvloop, no framework) was as fast as this
server within the noise of a shared 2-core box (10 connections, four runs: 970-2,040 req/s vs
1,130-1,760), so speed alone does not decide; what does: uvicorn has no request-body cap and no
time limit for receiving a request (the app would have to enforce both after uvicorn accepted the
bytes), it is an optional dependency (the ``server`` extra), and its start-up adds imports. This
server parses the request line and headers itself (only what it needs: ``Content-Length``,
``Content-Type``, ``Connection``, ``Expect``), refuses before reading, calls the pure router
(:mod:`orchestrator.serve.protocols`) inline on the event loop (the work is CPU-bound under the
GIL, so a thread pool would only add hops) and writes one buffer. It runs on uvloop when that is
installed and on the stdlib loop otherwise.

Hostile clients: headers over ``max_header_bytes`` → 431; a body over ``max_body_bytes`` → 413
before it is read; ``Transfer-Encoding`` → 411 (a length is required); a client that sends a
request too slowly (slowloris) → 408 after ``request_timeout``; an idle keep-alive connection is
closed after ``idle_timeout``; at most ``max_connections`` at once (more → 503). A client that
does not read its responses stops being read from (back-pressure). Graceful stop: stop listening,
close idle connections, finish the request in hand, then exit.

Must not import: control, api, cli, run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote

from orchestrator.serve.protocols import Response, error, family_of

REASONS = {200: b"OK", 400: b"Bad Request", 403: b"Forbidden", 404: b"Not Found",
           405: b"Method Not Allowed", 408: b"Request Timeout", 411: b"Length Required",
           413: b"Content Too Large", 415: b"Unsupported Media Type", 431: b"Request Header Fields Too Large",
           500: b"Internal Server Error", 503: b"Service Unavailable"}
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})

Handler = Callable[[str, str, str, bytes], Response]


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 32 * 1024 * 1024
    max_header_bytes: int = 16 * 1024
    request_timeout: float = 15.0  # from a request's first byte to its last
    idle_timeout: float = 30.0  # a keep-alive connection with no request
    max_connections: int = 512


def render(resp: Response, keep_alive: bool, head: bool = False) -> bytes:
    reason = REASONS.get(resp.status, b"Unknown")
    parts = [b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
        resp.status, reason, resp.content_type, len(resp.body))]
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    if not head:
        parts.append(resp.body)
    return b"".join(parts)


class Server:
    """Owns the listening socket and the set of open connections."""

    def __init__(self, handler: Handler, limits: Limits | None = None) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.connections: set[HttpConnection] = set()
        self.draining = False
        self._server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: HttpConnection(self), host, port, backlog=1024,
                                                reuse_address=True)
        return int(self._server.sockets[0].getsockname()[1])

    async def drain(self, grace: float = 10.0) -> None:
        """Stop listening, close idle connections, wait up to ``grace`` for the busy ones."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for c in list(self.connections):
            c.close_if_idle()
        deadline = asyncio.get_running_loop().time() + grace
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for c in list(self.connections):
            c.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)


class HttpConnection(asyncio.Protocol):
    """One client connection: a small state machine (head → body → respond), with timers."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.limits = server.limits
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.need = -1  # body length still expected once the head is parsed; -1: reading a head
        self.req: tuple[str, str, str, bool, bool] = ("", "", "", True, False)
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False
        self.closing = False

    # ---------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport is not a subclass
        if len(self.server.connections) >= self.limits.max_connections or self.server.draining:
            self.transport.write(render(error("", 503, "too many connections"), False))
            self.transport.close()
            self.closing = True
            return
        self.server.connections.add(self)
        self.transport.set_write_buffer_limits(high=1 << 20)
        self._arm(self.limits.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self._disarm()
        self.closing = True

    def pause_writing(self) -> None:  # the client is not reading: stop reading its requests
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()
            self._process()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if not self.buf and self.need < 0:
            self._arm(self.limits.request_timeout)  # first byte of a request
        self.buf += data
        self._process()

    # ---------------------------------------------------------------- parsing

    def _process(self) -> None:
        while not self.closing and not self.paused:
            if self.need < 0:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > self.limits.max_header_bytes:
                        self._fail("", 431, "the request head is larger than "
                                   f"{self.limits.max_header_bytes} bytes")
                    return
                if end > self.limits.max_header_bytes:
                    self._fail("", 431, f"the request head is larger than {self.limits.max_header_bytes} bytes")
                    return
                head = bytes(self.buf[:end])
                del self.buf[:end + 4]
                if not self._head(head):
                    return
            if len(self.buf) < self.need:
                return
            body = bytes(self.buf[:self.need])
            del self.buf[:self.need]
            self.need = -1
            self._respond(body)
            if not self.buf:
                self._arm(self.limits.idle_timeout)
            else:
                self._arm(self.limits.request_timeout)

    def _head(self, head: bytes) -> bool:
        """Parse a request head; sets ``self.req``/``self.need``; False (and replies) when refused."""
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            text = ""
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[0] not in METHODS or not parts[1].startswith("/") or \
                parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
            self._fail("", 400, "malformed request line")
            return False
        method, target, version = parts
        path = target.split("?", 1)[0]
        if "%" in path:
            path = unquote(path, errors="strict") if _decodable(path) else "\0"
        if "\0" in path or len(path) > 2048:
            self._fail("", 400, "malformed request path")
            return False
        family = family_of(path)
        length, ctype, conn, expect, chunked = -1, "", "", False, False
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                self._fail(family, 400, "malformed header line")
                return False
            key = name.lower()
            value = value.strip()
            if key == "content-length":
                if not value.isdigit() or (length >= 0 and int(value) != length):
                    self._fail(family, 400, "invalid Content-Length")
                    return False
                length = int(value)
            elif key == "content-type":
                ctype = value
            elif key == "connection":
                conn = value.lower()
            elif key == "transfer-encoding":
                chunked = True
            elif key == "expect":
                expect = value.lower() == "100-continue"
        if chunked:
            self._fail(family, 411, "chunked request bodies are not accepted: send a Content-Length")
            return False
        if length > self.limits.max_body_bytes:
            self._fail(family, 413, f"the body ({length} bytes) is larger than the cap of "
                       f"{self.limits.max_body_bytes} bytes")
            return False
        keep = ("close" not in conn) if version == "HTTP/1.1" else ("keep-alive" in conn)
        self.req = (method, path, ctype, keep, method == "HEAD")
        self.need = max(length, 0)
        if expect and self.need and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def _respond(self, body: bytes) -> None:
        method, path, ctype, keep, head = self.req
        resp = self.server.handler(method, path, ctype, body)
        keep = keep and not self.server.draining
        if self.transport is None:
            return
        self.transport.write(render(resp, keep, head))
        if not keep:
            self._close()

    # ---------------------------------------------------------------- timers and closing

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.timer = asyncio.get_running_loop().call_later(seconds, self._timeout)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timeout(self) -> None:
        self.timer = None
        if self.closing:
            return
        if self.buf or self.need >= 0:
            self._fail(family_of(self.req[1]) if self.need >= 0 else "", 408,
                       f"the request was not received within {self.limits.request_timeout:g} s")
        else:
            self._close()

    def _fail(self, family: str, status: int, message: str) -> None:
        if self.transport is not None and not self.closing:
            self.transport.write(render(error(family, status, message), False))
        self._close()

    def _close(self) -> None:
        self.closing = True
        self._disarm()
        self.buf.clear()
        if self.transport is not None:
            self.transport.close()

    def close_if_idle(self) -> None:
        if not self.buf and self.need < 0:
            self._close()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()


def _decodable(path: str) -> bool:
    try:
        unquote(path, errors="strict")
    except UnicodeDecodeError:
        return False
    return True
