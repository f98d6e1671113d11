"""The server against slow and greedy clients, its liveness probe, duplicate JSON keys, and a
graceful SIGTERM (issue item 25) — a real ``orchestrator serve`` on 127.0.0.1 with a random port,
raw sockets where a well-behaved client library would hide the behaviour under test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ApiServer

# one worker runs the whole module (--dist loadgroup): its module-scoped server is started once
pytestmark = pytest.mark.xdist_group("server_hardening")


FAST = {"ORCHESTRATOR_HTTP_HEADER_TIMEOUT": "1", "ORCHESTRATOR_HTTP_BODY_TIMEOUT": "1",
        "ORCHESTRATOR_MAX_CONNECTIONS": "8"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A server with short read timeouts (1 s) and a limit of 8 connections, shared by the tests
    that leave it serving (each closes its sockets; the 503 test waits until it serves again)."""
    server = ApiServer(tmp_path_factory.mktemp("hardening"), env=FAST)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_srv(tmp_path: Path) -> Iterator[ApiServer]:
    """The same server, for one test that stops it."""
    server = ApiServer(tmp_path, env=FAST)
    try:
        yield server
    finally:
        server.stop()


def _connect(srv: ApiServer) -> socket.socket:
    host, port = srv.base.rsplit("//", 1)[1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _read_all(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    t0 = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic() - t0
        data += chunk


def _healthy(srv: ApiServer) -> None:
    status, _, body = srv.call("GET", "/v2/lm/healthz")
    assert status == 200 and body["status"] == "READY", (status, body)


def test_a_client_that_never_finishes_its_headers_is_dropped(srv: ApiServer) -> None:
    slow = _connect(srv)
    slow.sendall(b"GET /v2/lm/healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
    _healthy(srv)  # others are served meanwhile
    for _ in range(3):  # trickling more bytes does not extend the deadline
        time.sleep(0.3)
        slow.sendall(b"x")
    data, waited = _read_all(slow, 15)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b"REQUEST_TIMEOUT" in data
    assert waited < 10, waited
    slow.close()


def test_an_idle_connection_is_dropped_and_keep_alive_still_works(srv: ApiServer) -> None:
    idle = _connect(srv)
    data, _ = _read_all(idle, 15)
    assert data == b""  # nothing was asked: closed without an answer
    idle.close()
    # a kept-alive connection serves several requests, each head arriving in time
    conn = _connect(srv)
    request = (f"GET /v2/lm/healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.token}\r\n\r\n").encode()
    buf = b""
    for _ in range(3):
        conn.sendall(request)
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(4096)
        head, _, buf = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(buf) < length:
            buf += conn.recv(4096)
        buf = buf[length:]
        time.sleep(0.4)  # 1.2 s in all: longer than the header timeout, shorter than keep-alive
    conn.close()


def test_a_client_that_trickles_its_body_is_dropped(srv: ApiServer) -> None:
    slow = _connect(srv)
    slow.sendall(f"POST /v2/lm/configurations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.token}\r\n"
                 "AI-Resource-Group: default\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
                 '{"name": '.encode())
    data, waited = _read_all(slow, 15)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b"REQUEST_TIMEOUT" in data and b"connection: close" in data.lower()
    assert waited < 10, waited
    slow.close()
    _healthy(srv)


def test_connections_over_the_limit_are_refused_with_503(srv: ApiServer) -> None:
    held = [_connect(srv) for _ in range(8)]
    try:
        time.sleep(0.2)
        extra = _connect(srv)
        data, _ = _read_all(extra, 5)
        assert data.startswith(b"HTTP/1.1 503 "), data
        extra.close()
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while True:  # the held ones are gone: served again
        try:
            _healthy(srv)
            break
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_liveness_at_the_root_needs_no_token_and_says_nothing(srv: ApiServer) -> None:
    status, headers, body = srv.call("GET", "/healthz", token="", rg=None)
    assert status == 200 and body == {"status": "OK"}, (status, body)
    assert headers["content-type"] == "application/json"
    status, _, _ = srv.call("POST", "/healthz", token="", rg=None, body={})
    assert status == 405
    status, _, _ = srv.call("GET", "/v2/lm/healthz", token="", rg=None)
    assert status == 401  # the detailed probe stays authenticated


def test_duplicate_keys_in_a_json_body_are_a_400(srv: ApiServer) -> None:
    raw = b'{"name": "a", "scenarioId": "s", "executableId": "e", "name": "b"}'
    status, _, body = srv.call("POST", "/v2/lm/configurations", raw=raw,
                               headers={"Content-Type": "application/json"})
    assert status == 400, body
    assert "duplicate key 'name'" in body["error"]["message"], body
    nested = b'{"name": "a", "scenarioId": "s", "executableId": "e", "parameterBindings": [{"key": "k", "key": "j"}]}'
    status, _, body = srv.call("POST", "/v2/lm/configurations", raw=nested,
                               headers={"Content-Type": "application/json"})
    assert status == 400 and "duplicate key 'key'" in body["error"]["message"], body


def test_the_banner_names_the_resource_group_header(srv: ApiServer) -> None:
    out = srv.output()
    assert "needs the header 'AI-Resource-Group: <id>'" in out, out
    assert "/healthz answers liveness without a token" in out


def test_sigterm_shuts_the_server_down_gracefully_with_exit_0(own_srv: ApiServer) -> None:
    srv = own_srv
    # a request in flight (its body still coming) is answered or dropped, never left hanging
    conn = _connect(srv)
    conn.sendall(f"GET /v2/lm/healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.token}\r\n\r\n".encode())
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(20) == 0, srv.output()
    assert "orchestrator API stopped" in srv.output()
    assert "Traceback" not in srv.output(), srv.output()
    conn.close()


def test_the_standalone_scheduler_stops_on_sigterm_with_exit_0(tmp_path: Path) -> None:
    env = {**os.environ, "ORCHESTRATOR_HOME": str(tmp_path / "home")}
    subprocess.run([sys.executable, "-m", "orchestrator", "init"], cwd=tmp_path, env=env, capture_output=True,
                   check=False)
    p = subprocess.Popen([sys.executable, "-m", "orchestrator", "scheduler", "--interval", "30"], cwd=tmp_path,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stderr is not None
        line = p.stderr.readline()  # "scheduler running every 30s ..." once the loop is about to start
        assert "scheduler" in line, line
        time.sleep(1.0)  # into the loop's wait
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
        assert p.returncode == 0, (p.returncode, out, err)
        assert time.monotonic() - t0 < 10  # it did not sleep out its 30 s interval
        assert "Traceback" not in err, err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_json_duplicate_keys_are_rejected_by_the_wire_parser() -> None:
    from orchestrator.api import wire

    assert wire.parse_json(b'{"a": {"b": 1}, "c": [{"d": 2}]}') == {"a": {"b": 1}, "c": [{"d": 2}]}
    with pytest.raises(wire.BadRequest, match="duplicate key 'b'"):
        wire.parse_json(b'{"a": {"b": 1, "b": 2}}')
    assert json.loads(b'{"x": 1, "x": 2}') == {"x": 2}  # what the stdlib alone would accept
