"""The HTTP connection guard uvicorn lacks: a header read timeout and a connection limit.

Owns: :func:`guarded`, a subclass of uvicorn's HTTP protocol class (httptools, or h11 without
it) that

* drops a client that has not sent a complete request head within :data:`HEADER_TIMEOUT`
  seconds — from the connection's start, or from the first byte of a following request on a
  kept-alive connection (uvicorn's ``timeout_keep_alive`` only covers idle time *between*
  requests and is reset by every byte, so a client trickling a header one byte at a time held
  the connection forever: encode/uvicorn#157 never got its ``--timeout-request-start``). A
  client that sent part of a request gets ``408`` before the close; an idle one is just closed.
  One sweep per second over the open connections does it, so a request costs a timestamp, not a
  timer;
* refuses a connection beyond :data:`MAX_CONNECTIONS` at once with ``503`` and a close (before
  its request is read, so a flood of idle sockets cannot take the server's file descriptors).

The body read timeout is the gate's (:meth:`orchestrator.api.app.Gate._read_body`): it is where
the body is read. Imports uvicorn only; nothing of ours.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

HEADER_TIMEOUT = float(os.environ.get("ORCHESTRATOR_HTTP_HEADER_TIMEOUT", "5"))
MAX_CONNECTIONS = int(os.environ.get("ORCHESTRATOR_MAX_CONNECTIONS", "512"))
SWEEP_EVERY = min(1.0, HEADER_TIMEOUT / 4)


def _raw(status: str, message: str) -> bytes:
    code = status.split(" ", 1)[1].upper().replace(" ", "_")
    body = json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


TIMEOUT_408 = _raw("408 Request Timeout", f"the request head was not complete within {HEADER_TIMEOUT:g} s")
BUSY_503 = _raw("503 Service Unavailable", f"more than {MAX_CONNECTIONS} open connections; retry later")


class _Sweeper:
    """Closes the connections of one event loop that wait too long for a request head."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: set[Any] = set()
        self.handle: asyncio.TimerHandle | None = None

    def add(self, conn: Any) -> None:
        self.waiting.add(conn)
        if self.handle is None:
            self.handle = self.loop.call_later(SWEEP_EVERY, self.sweep)

    def sweep(self) -> None:
        self.handle = None
        cutoff = self.loop.time() - HEADER_TIMEOUT
        for conn in list(self.waiting):
            since = conn._head_since
            if since is None:
                self.waiting.discard(conn)
            elif since <= cutoff:
                self.waiting.discard(conn)
                conn._drop_slow()
        if self.waiting:
            self.handle = self.loop.call_later(SWEEP_EVERY, self.sweep)


_sweepers: dict[int, _Sweeper] = {}


def _sweeper(loop: asyncio.AbstractEventLoop) -> _Sweeper:
    s = _sweepers.get(id(loop))
    if s is None or s.loop is not loop:
        s = _sweepers[id(loop)] = _Sweeper(loop)
    return s


class _Guard:
    """Mixed in before uvicorn's protocol class (see :func:`guarded`)."""

    _head_since: float | None = None  # loop time since which a request head is awaited
    _head_bytes = False  # part of that head has arrived

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if len(self.connections) > MAX_CONNECTIONS:  # type: ignore[attr-defined]
            transport.write(BUSY_503)
            transport.close()
            return
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_since = None
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        new_head = self._head_since is None and self._between_requests()
        super().data_received(data)  # type: ignore[misc]
        if self._between_requests():
            if new_head:  # a request began and its head is not complete yet: the clock runs
                self._await_head()
            self._head_bytes = True
        elif self._head_since is not None:
            self._head_since = None  # the head is complete: the request runs (its body is the gate's)

    def _between_requests(self) -> bool:
        cycle = self.cycle  # type: ignore[attr-defined]
        return cycle is None or cycle.response_complete

    def _await_head(self) -> None:
        loop = self.loop  # type: ignore[attr-defined]
        self._head_since = loop.time()
        self._head_bytes = False
        _sweeper(loop).add(self)

    def _drop_slow(self) -> None:
        transport = self.transport  # type: ignore[attr-defined]
        self._head_since = None
        if transport.is_closing():
            return
        if self._head_bytes:
            transport.write(TIMEOUT_408)
        transport.close()


def guarded(base: type[asyncio.Protocol] | None = None) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class (``base``, default: what ``http="auto"`` picks) with the guard."""
    if base is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        base = AutoHTTPProtocol
    return type(f"Guarded{base.__name__}", (_Guard, base), {})
