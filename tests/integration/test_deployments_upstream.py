"""The inference proxy's HTTP client against real loopback servers that answer in every framing
(Content-Length, chunked with trailers, close-delimited HTTP/1.0), close pooled connections while
idle, refuse connections, or answer garbage and too much."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from orchestrator.api import upstream as up
from orchestrator.api.upstream import Upstream, UpstreamError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head + await reader.readexactly(length)


def _run(handler: Handler, client: Callable[[int], Awaitable[object]]) -> object:
    async def main() -> object:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await client(port)
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def test_framings_and_keep_alive() -> None:
    seen: list[bytes] = []
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                req = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append(req)
            if b"/chunked" in req:
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n"
                             b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n")
            elif b"/old" in req:
                writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: text/html\r\n\r\nuntil the close")
                await writer.drain()
                writer.close()
                return
            else:
                writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    async def client(port: int) -> object:
        u = Upstream()
        a = await u.request(port, "POST", "/plain?x=1", [("content-type", "application/json")], b'{"a":1}', 5)
        b = await u.request(port, "GET", "/chunked", [], b"", 5)
        c = await u.request(port, "GET", "/old", [], b"", 5)
        assert len(u.idle.get(port, [])) == 0  # the close-delimited answer closed it
        d = await u.request(port, "GET", "/plain", [], b"", 5)
        u.close()
        return a, b, c, d

    a, b, c, d = _run(handler, client)  # type: ignore[misc]
    assert a[0] == 201 and a[2] == b"ok"
    assert b[2] == b"hello world" and ("content-type", "text/plain") in b[1]
    assert c[0] == 200 and c[2] == b"until the close"
    assert d[2] == b"ok"
    assert connections == 2  # plain, chunked and old shared one connection; the last needed a new one
    assert seen[0].startswith(b"POST /plain?x=1 HTTP/1.1\r\n") and seen[0].endswith(b'\r\n\r\n{"a":1}')


def test_a_pooled_connection_closed_while_idle_is_replaced() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n1")
        await writer.drain()
        writer.close()  # keep-alive announced, then closed while idle (an idle timeout)

    async def client(port: int) -> object:
        u = Upstream()
        first = await u.request(port, "POST", "/", [], b"x", 5)
        await asyncio.sleep(0.05)
        second = await u.request(port, "POST", "/", [], b"x", 5)
        return first[2], second[2]

    assert _run(handler, client) == (b"1", b"1")


def test_refused_garbage_and_too_much(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(UpstreamError) as err:
            await Upstream().request(port, "GET", "/", [], b"", 5)
        assert err.value.connect

    asyncio.run(refused())

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"SSH-2.0-not-http\r\n\r\n")
        await writer.drain()
        writer.close()

    async def bad(port: int) -> object:
        with pytest.raises(UpstreamError) as err:
            await Upstream().request(port, "GET", "/", [], b"", 5)
        return err.value.connect

    assert _run(garbage, bad) is False

    monkeypatch.setattr(up, "MAX_BODY", 10)

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n01234567890")
        await writer.drain()
        writer.close()

    assert _run(big, bad) is False

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async def slow(port: int) -> object:
        with pytest.raises(UpstreamError, match="no answer within"):
            await Upstream().request(port, "GET", "/", [], b"", 0.2)
        return True

    assert _run(silent, slow) is True
