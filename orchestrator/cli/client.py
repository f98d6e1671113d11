"""A small AI API v2 client (stdlib only) for ``--server``: the CLI talking to a shared server.

Owns: the server address and token from options or the environment (``ORCHESTRATOR_SERVER``,
``ORCHESTRATOR_TOKEN`` or ``ORCHESTRATOR_TOKEN_FILE``, ``ORCHESTRATOR_RESOURCE_GROUP``), the
HTTP calls, and turning the AI API error body into the package's exceptions (so the CLI prints
one line and the usual exit code). The token is sent, never printed.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from orchestrator.errors import NotFound, OrchestratorError, StoreError, UsageError


class RemoteError(OrchestratorError):
    """The server refused the request (its error code and message are kept)."""

    code = "REMOTE_ERROR"


class Client:
    def __init__(self, server: str, token: str, resource_group: str = "default", timeout: float = 60.0) -> None:
        parsed = urllib.parse.urlsplit(server)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UsageError(f"--server {server!r} is not an http(s) URL", hint="e.g. http://127.0.0.1:8080")
        self.base = server.rstrip("/")
        if self.base.endswith("/v2"):
            self.base = self.base[:-3]
        self.token = token
        self.rg = resource_group
        self.timeout = timeout

    @classmethod
    def from_options(cls, server: str | None, resource_group: str | None = None) -> Client:
        url = server or os.environ.get("ORCHESTRATOR_SERVER", "")
        token = os.environ.get("ORCHESTRATOR_TOKEN", "")
        token_file = os.environ.get("ORCHESTRATOR_TOKEN_FILE", "")
        if not token and token_file:
            try:
                token = Path(token_file).read_text().strip()
            except OSError as exc:
                raise UsageError(f"cannot read ORCHESTRATOR_TOKEN_FILE: {exc.strerror}") from None
        if not token:
            raise UsageError("no token for --server", hint="set ORCHESTRATOR_TOKEN or ORCHESTRATOR_TOKEN_FILE "
                             "(`orchestrator tokens create` on the server makes one)")
        return cls(url, token, resource_group or os.environ.get("ORCHESTRATOR_RESOURCE_GROUP", "default"))

    def call(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        params = {k: v for k, v in query.items() if v not in (None, "")}
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {"Authorization": f"Bearer {self.token}", "AI-Resource-Group": self.rg,
                   "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            raise self._error(exc.code, exc.read()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StoreError(f"cannot reach {self.base}: {reason}", hint="is `orchestrator serve` running?") from None
        return json.loads(payload) if payload else None

    @staticmethod
    def _error(status: int, payload: bytes) -> OrchestratorError:
        try:
            err = json.loads(payload)["error"]
            message, code = str(err.get("message", "")), str(err.get("code", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            message, code = payload[:200].decode("utf-8", "replace"), ""
        if status == 404:
            return NotFound(message or "not found")
        if status in (401, 403):
            return UsageError(f"server refused the token ({status}): {message}",
                              hint="check ORCHESTRATOR_TOKEN and its role")
        exc = RemoteError(f"{message or 'request failed'} (HTTP {status}{', ' + code if code else ''})")
        exc.exit_code = 3 if status >= 500 else 2
        return exc
