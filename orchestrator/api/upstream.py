"""A lean HTTP/1.1 client for the inference proxy: one request to a predictor on 127.0.0.1.

Owns: writing the request in one send, reading the answer (``Content-Length``, chunked, or up to
the close), caps (head 64 KiB, 100 header lines, body :data:`MAX_BODY`), the whole exchange's
timeout, and a small keep-alive pool per port (TCP_NODELAY). A pooled connection the predictor
closed while idle is detected before any answer byte and the request is sent again on a new
connection (nothing reached the application); any other failure is raised as
:class:`UpstreamError`. Why not httpx: its per-request overhead (several ms here) dominated the
proxy's cost; a predictor answers in well under a millisecond. Imports nothing of the package.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable

MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
MAX_BODY = 64 * 1024 * 1024
POOL_PER_PORT = 32


class UpstreamError(Exception):
    """The predictor could not be reached (``connect``) or gave no valid answer."""

    def __init__(self, message: str, *, connect: bool = False) -> None:
        super().__init__(message)
        self.connect = connect


class _Stale(Exception):
    """A pooled connection was closed by the predictor before it answered (send again)."""


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Upstream:
    """Keep-alive connections to predictors, by port."""

    def __init__(self) -> None:
        self.idle: dict[int, list[Conn]] = {}

    async def request(self, port: int, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes,
                      timeout: float) -> tuple[int, list[tuple[str, str]], bytes]:
        """``(status, headers, body)`` of ``method target`` on ``127.0.0.1:port``."""
        head = [f"{method} {target} HTTP/1.1", f"host: 127.0.0.1:{port}", f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            return await asyncio.wait_for(self._exchange(port, data, method == "HEAD"), timeout)
        except TimeoutError:
            raise UpstreamError(f"no answer within {timeout:g} s") from None

    async def _exchange(self, port: int, data: bytes, head_only: bool) -> tuple[int, list[tuple[str, str]], bytes]:
        pool = self.idle.setdefault(port, [])
        while pool:
            conn = pool.pop()
            if conn[0].at_eof():
                conn[1].close()
                continue
            try:
                return await self._send(port, conn, data, head_only, reused=True)
            except _Stale:
                continue
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            raise UpstreamError(f"cannot connect: {exc.strerror or exc}", connect=True) from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return await self._send(port, (reader, writer), data, head_only, reused=False)
        except _Stale:
            raise UpstreamError("the predictor closed the connection without an answer") from None

    async def _send(self, port: int, conn: Conn, data: bytes, head_only: bool,
                    reused: bool) -> tuple[int, list[tuple[str, str]], bytes]:
        reader, writer = conn
        answered = False
        try:
            writer.write(data)
            await writer.drain()
            try:
                line = await reader.readuntil(b"\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise _Stale() from None
                raise
            answered = True
            status, headers, keep = await self._head(reader, line)
            body = b"" if head_only or status in (204, 304) or 100 <= status < 200 else \
                await self._body(reader, headers)
        except _Stale:
            writer.close()
            raise
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            writer.close()
            if reused and not answered and isinstance(exc, ConnectionError):
                raise _Stale() from None
            raise UpstreamError(f"bad answer: {type(exc).__name__}") from None
        except BaseException:
            writer.close()
            raise
        pool = self.idle.setdefault(port, [])
        if keep and len(pool) < POOL_PER_PORT and not reader.at_eof():
            pool.append(conn)
        else:
            writer.close()
        return status, headers, body

    @staticmethod
    async def _head(reader: asyncio.StreamReader, line: bytes) -> tuple[int, list[tuple[str, str]], bool]:
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ValueError("not an HTTP/1.x status line")
        status, version = int(parts[1]), parts[0]
        headers: list[tuple[str, str]] = []
        size = len(line)
        while True:
            raw = await reader.readuntil(b"\r\n")
            size += len(raw)
            if raw == b"\r\n":
                break
            if size > MAX_HEAD or len(headers) >= MAX_HEADERS:
                raise ValueError("answer head too large")
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                raise ValueError("bad header line")
            headers.append((name.strip().lower(), value.strip()))
        conn = ",".join(v.lower() for k, v in headers if k == "connection")
        keep = "close" not in conn and (version == "HTTP/1.1" or "keep-alive" in conn)
        return status, headers, keep

    @staticmethod
    async def _body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
        values = dict(headers)
        if "chunked" in values.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise ValueError("answer too large")
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
        length = values.get("content-length")
        if length is not None:
            n = int(length)
            if not 0 <= n <= MAX_BODY:
                raise ValueError("answer too large")
            return await reader.readexactly(n)
        data = await reader.read(MAX_BODY + 1)  # delimited by the close
        rest = [data]
        while data and sum(map(len, rest)) <= MAX_BODY:
            data = await reader.read(MAX_BODY + 1)
            rest.append(data)
        body = b"".join(rest)
        if len(body) > MAX_BODY:
            raise ValueError("answer too large")
        return body

    def close(self) -> None:
        for pool in self.idle.values():
            for _r, w in pool:
                w.close()
        self.idle.clear()
