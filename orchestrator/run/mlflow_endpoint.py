"""The runner's loopback MLflow endpoint: one per execution, for its steps' ``mlflow`` client.

Owns: a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a daemon thread of the runner
process, started lazily when the first leaf step is prepared and stopped when the run ends; a
random per-execution bearer credential; body caps (JSON 8 MiB, artifact uploads streamed to disk
with a cap); and the ``MLFLOW_*`` variables a step gets (:func:`step_env`). The protocol itself is
:mod:`orchestrator.run.mlflow_protocol`. Executions the REST server starts run in the same runner
code (``orchestrator _execute``), so this endpoint serves them too. Its store connection is a
``clone()`` opened on the first request: a run whose steps never log pays for a socket and a
thread only. ``ORCHESTRATOR_MLFLOW=0`` turns it off. Imports: store, errors.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from orchestrator.run.mlflow_protocol import MAX_JSON, Session

TIMEOUT = 60.0  # a client that stops sending mid-request does not hold a handler thread forever


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client's session reuses one connection
    server: _Server

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
                f = open(out, "rb")
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
        # Headers and body in one write: two small segments meet the client's delayed ACK (40 ms each).
        self._headers_buffer.append(b"\r\n")
        self.wfile.write(b"".join(self._headers_buffer) + data)
        self._headers_buffer = []

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    session: Session


class Endpoint:
    """A running loopback endpoint for one execution."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.session = session
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.closed = False
        self.thread = threading.Thread(target=self._loop, name="mlflow-endpoint", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.closed:
            try:
                self.server.handle_request()  # blocks in select: no polling interval to wait out at stop
            except OSError:
                return

    def stop(self) -> None:
        self.closed = True
        try:  # wake the blocked accept; it sees ``closed`` and returns
            socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
        except OSError:
            pass
        self.thread.join(2.0)
        self.server.server_close()
        self.session.close()


def step_env(r: Any, run_id: str, node_id: str) -> dict[str, str]:
    """The ``MLFLOW_*`` variables of one step (its run is ``run_id``); starts the endpoint once."""
    if os.environ.get("ORCHESTRATOR_MLFLOW", "1") == "0":
        return {}
    ep: Endpoint | None = getattr(r, "mlflow_endpoint", None)
    if ep is None:
        session = Session(r.store.clone, r.objects, r.ex, secrets.token_urlsafe(24), Path(r.workdir) / "mlflow")
        ep = Endpoint(session)
        r.mlflow_endpoint = ep
    ep.session.add_run(run_id, node_id)
    return {"MLFLOW_TRACKING_URI": ep.url, "MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_TOKEN": ep.session.token,
            "MLFLOW_EXPERIMENT_ID": ep.session.experiment_id}


def stop(r: Any) -> None:
    """Stop the runner's endpoint, if it was started (store what its runs left behind)."""
    ep: Endpoint | None = getattr(r, "mlflow_endpoint", None)
    if ep is not None:
        r.mlflow_endpoint = None
        ep.stop()
