"""HTTP/1.1 transport of the runner's MLflow endpoint (stdlib ``http.server``), imported lazily.

Owns: request parsing and answers only: body caps (JSON 8 MiB; artifact uploads handed to the
protocol as a stream with their Content-Length), keep-alive, one write per JSON answer (headers and
body together: two small segments would meet the client's delayed ACK, 40 ms each), files
streamed; paths percent-decoded once. Bounded: an idle connection is closed after
``IDLE_TIMEOUT`` (the request head included), at most ``MAX_CONNECTIONS`` are served at once (more
are closed at once), and none is accepted when fewer than ``FD_RESERVE`` descriptors are left, so a
step can never starve the runner of threads or file descriptors. Imported by :mod:`orchestrator.run.mlflow_endpoint`'s server thread, so a run pays for
``http.server`` off its critical path. What a request means: :mod:`orchestrator.run.mlflow_protocol`
(and, for SAP's ``ai_core_sdk`` tracking calls, :mod:`orchestrator.run.aicore_tracking`).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from orchestrator.run import aicore_tracking
from orchestrator.run.mlflow_protocol import MAX_JSON, Session

TIMEOUT = 60.0  # a client that stops sending mid-request does not hold a handler thread forever
IDLE_TIMEOUT = 10.0  # waiting for a request head (the first one, or the next on a kept-alive connection)
MAX_CONNECTIONS = 64  # connections served at once (one thread each); more are closed at once
FD_RESERVE = 128  # file descriptors always left to the runner: no connection is accepted into them


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client's session reuses one connection
    timeout = IDLE_TIMEOUT  # applied by setup(), before the request head is read
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        self.connection.settimeout(TIMEOUT)
        try:
            self._request()
        finally:
            self.connection.settimeout(self.timeout)  # idle again: wait for the next head as long only

    def _request(self) -> None:
        u = urlsplit(self.path)
        try:
            path = unquote(u.path, errors="strict")  # decoded exactly once ("a%20b.txt" is "a b.txt")
        except UnicodeDecodeError:
            path = "\x00"
        if "\x00" in path:
            self.close_connection = True
            return self._reply(400, {"error_code": "INVALID_PARAMETER_VALUE",
                                     "message": "the request path is not valid UTF-8 or holds a NUL"})
        query = dict(parse_qsl(u.query, keep_blank_values=True))
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        body: Any = None
        artifact_put = self.command == "PUT" and "/mlflow-artifacts/" in path
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True  # never read as an empty body: a silently empty artifact
            return self._reply(400, {"error_code": "INVALID_PARAMETER_VALUE",
                                     "message": "chunked request bodies are not supported: send a Content-Length"})
        if length < 0 or (not artifact_put and length > MAX_JSON):
            self.close_connection = True
            return self._reply(400, {"error_code": "INVALID_PARAMETER_VALUE",
                                     "message": f"request body over {MAX_JSON} bytes or bad Content-Length"})
        if artifact_put:
            body = self.rfile
        elif length:
            body = self.rfile.read(length)
        got = None if artifact_put else aicore_tracking.handle(self.server.session, self.command, path, body)
        if got is not None:  # SAP's ai_core_sdk Tracking (AICORE_TRACKING_ENDPOINT), not MLflow
            return self._reply(*got)
        status, out = self.server.session.handle(self.command, path, query, body,
                                                 self.headers.get("Authorization"), length)
        if artifact_put and status != 200:
            self.close_connection = True  # the unread upload must not be parsed as the next request
        self._reply(status, out)

    def _reply(self, status: int, out: Any) -> None:
        if isinstance(out, Path):
            try:
                f = open(out, "rb")  # noqa: SIM115 - closed below; a vanished file is answered
            except OSError:
                return self._reply(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "artifact vanished"})
            with f:
                size = os.fstat(f.fileno()).st_size
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                shutil.copyfileobj(f, self.wfile, 1024 * 1024)
            return
        data = out if isinstance(out, bytes) else json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self._headers_buffer.append(b"\r\n")
        self.wfile.write(b"".join(self._headers_buffer) + data)
        self._headers_buffer = []

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


def _fd_limit() -> int:
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        return 1024
    return soft if 0 < soft < 1 << 20 else 1 << 20


class Server(ThreadingHTTPServer):
    daemon_threads = True
    session: Session
    slots: threading.BoundedSemaphore

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError:
            time.sleep(0.05)  # EMFILE and the like: the listening socket stays readable; do not spin
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        # File descriptors are handed out lowest first: a descriptor numbered n means n are in use.
        if request.fileno() >= _fd_limit() - FD_RESERVE or not self.slots.acquire(blocking=False):
            self.shutdown_request(request)  # closed at once: no thread, no descriptor kept
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            self.shutdown_request(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            _linger_close(request)
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-answer: nothing to print on the runner's terminal


def _linger_close(sock: socket.socket, limit: int = 1 << 20, wait: float = 0.5) -> None:
    """Close after the answer without resetting it: a request refused before its body was read
    (chunked, over the cap) leaves bytes unread, and closing on them sends an RST that can destroy
    the answer in flight or break the client's pipe while it still sends. So: stop writing, read
    and drop what the client still sends (bounded in bytes and time), then close."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(wait)
        deadline = time.monotonic() + wait
        while limit > 0 and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            limit -= len(chunk)
    except OSError:
        pass
    finally:
        sock.close()


def make_server(sock: socket.socket, session: Session) -> Server:
    """An HTTP server answering on the already listening ``sock``."""
    server = Server(sock.getsockname(), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.session = session
    server.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    return server
