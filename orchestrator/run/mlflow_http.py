"""HTTP/1.1 transport of the runner's MLflow endpoint (stdlib ``http.server``), imported lazily.

Owns: request parsing and answers only: body caps (JSON 8 MiB; artifact uploads handed to the
protocol as a stream with their Content-Length), keep-alive, one write per JSON answer (headers and
body together: two small segments would meet the client's delayed ACK, 40 ms each), files
streamed. Imported by :mod:`orchestrator.run.mlflow_endpoint`'s server thread, so a run pays for
``http.server`` off its critical path. What a request means: :mod:`orchestrator.run.mlflow_protocol`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from orchestrator.run.mlflow_protocol import MAX_JSON, Session

TIMEOUT = 60.0  # a client that stops sending mid-request does not hold a handler thread forever


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client's session reuses one connection
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        self.connection.settimeout(TIMEOUT)
        u = urlsplit(self.path)
        query = dict(parse_qsl(u.query, keep_blank_values=True))
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        body: Any = None
        artifact_put = self.command == "PUT" and "/mlflow-artifacts/" in u.path
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
        status, out = self.server.session.handle(self.command, u.path, query, body,
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


class Server(ThreadingHTTPServer):
    daemon_threads = True
    session: Session

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-answer: nothing to print on the runner's terminal


def make_server(sock: socket.socket, session: Session) -> Server:
    """An HTTP server answering on the already listening ``sock``."""
    server = Server(sock.getsockname(), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.session = session
    return server
