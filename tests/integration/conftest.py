"""A real ``orchestrator serve`` on 127.0.0.1 with a random port, for API tests.

The server runs as a subprocess over a home in ``tmp_path``; its first start writes the admin
token file, which the fixture reads. ``ApiServer.call`` is a tiny HTTP client (urllib) that
returns ``(status, headers, parsed JSON or raw bytes)`` and never raises on non-2xx.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


class ApiServer:
    def __init__(self, tmp: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.env = {**os.environ, "ORCHESTRATOR_HOME": str(self.home), **(env or {})}
        self.log = open(tmp / "server.log", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "serve", "--port", "0", *extra],
                                     cwd=tmp, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        self.base = ""
        while time.monotonic() < deadline:
            self.log.seek(0)
            m = re.search(r"listening on (http://\S+)", self.log.read())
            if m:
                self.base = m.group(1)
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not self.base:
            self.log.seek(0)
            raise RuntimeError("server did not start:\n" + self.log.read())
        self.token = (self.home / "admin-token").read_text().strip()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def call(self, method: str, path: str, body: Any = None, *, token: str | None = None, rg: str | None = "default",
             headers: dict[str, str] | None = None, raw: bytes | None = None,
             timeout: float = 30) -> tuple[int, dict[str, str], Any]:
        hdrs = {"Authorization": f"Bearer {self.token if token is None else token}"} if token != "" else {}
        if rg:
            hdrs["AI-Resource-Group"] = rg
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, rh, payload = resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            status, rh, payload = exc.code, dict(exc.headers), exc.read()
        try:
            return status, {k.lower(): v for k, v in rh.items()}, json.loads(payload) if payload else None
        except ValueError:
            return status, {k.lower(): v for k, v in rh.items()}, payload

    def cli(self, *args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=self.tmp, env=self.env, text=True,
                           capture_output=True, timeout=120)
        if check is not None and p.returncode != check:
            raise AssertionError(f"exit {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[ApiServer]:
    """A server with the shipped workflows registered in resource group ``default``."""
    server = ApiServer(tmp_path, "--workflows", str(REPO / "workflows"))
    try:
        yield server
    finally:
        server.stop()
