"""The MLflow endpoint's HTTP transport under hostile clients: idle connections time out, the
number served at once is bounded, descriptors run low without taking the runner down, and paths
are percent-decoded exactly once before they are kept inside their run."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.run import mlflow_endpoint, mlflow_http
from orchestrator.run.mlflow_protocol import Session
from orchestrator.store.artifacts import ObjectStore
from orchestrator.store.sqlite import SqliteStore

RG = "default"
API = "/api/2.0/mlflow/"
ART = "/api/2.0/mlflow-artifacts/artifacts/"


class Ep:
    """A real runner endpoint for one execution with one run."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.store = SqliteStore(str(tmp / "o.db"))
        self.store.ensure_resource_group(RG)
        cfg = self.store.create_configuration(RG, "c", "scen", "exe", [], [])
        self.ex = self.store.create_execution(RG, cfg, str(tmp / "work"))
        self.run = f"{self.ex.id}-abcdef0123"
        self.r = SimpleNamespace(store=self.store, objects=ObjectStore(tmp / "home"), ex=self.ex,
                                 workdir=str(tmp / "work"))
        self.env = mlflow_endpoint.step_env(self.r, self.run, "train")
        self.port = int(self.env["MLFLOW_TRACKING_URI"].rsplit(":", 1)[1])
        self.auth = {"Authorization": f"Bearer {self.env['MLFLOW_TRACKING_TOKEN']}"}

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request(method, path, body, self.auth)
            resp = c.getresponse()
            data = resp.read()
            if resp.getheader("Content-Type") != "application/json":
                return resp.status, data
            return resp.status, json.loads(data) if data else None
        finally:
            c.close()

    def metric(self) -> int:
        return self.request("POST", API + "runs/log-metric",
                            json.dumps({"run_id": self.run, "key": "k", "value": 1}).encode())[0]


@pytest.fixture
def ep(tmp_path: Path) -> Iterator[Ep]:
    e = Ep(tmp_path)
    yield e
    mlflow_endpoint.stop(e.r)


def closed_within(s: socket.socket, seconds: float) -> bool:
    s.settimeout(seconds)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_timeout_applies_before_the_head_is_read() -> None:
    assert mlflow_http.IDLE_TIMEOUT == 10.0 and mlflow_http.Handler.timeout == mlflow_http.IDLE_TIMEOUT


def test_an_idle_connection_is_closed_and_so_is_an_idle_kept_alive_one(ep: Ep,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlflow_http.Handler, "timeout", 1.0)
    s = socket.create_connection(("127.0.0.1", ep.port))  # the very first connection, never a byte sent
    t = time.monotonic()
    assert closed_within(s, 5) and time.monotonic() - t < 4
    s.close()
    s = socket.create_connection(("127.0.0.1", ep.port))
    s.sendall(f"GET {API}experiments/get?experiment_id=scen HTTP/1.1\r\nHost: x\r\n"
              f"Authorization: {ep.auth['Authorization']}\r\n\r\n".encode())
    s.settimeout(5)
    assert s.recv(65536).startswith(b"HTTP/1.1 200")
    t = time.monotonic()  # kept alive, then idle: closed after the idle timeout, not the body's 60 s
    assert closed_within(s, 5) and time.monotonic() - t < 4
    s.close()
    assert ep.metric() == 200


def test_200_idle_connections_keep_threads_bounded_and_the_endpoint_serving(ep: Ep,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlflow_http.Handler, "timeout", 2.0)
    assert ep.metric() == 200
    before = threading.active_count()
    socks = [socket.create_connection(("127.0.0.1", ep.port)) for _ in range(200)]
    try:
        time.sleep(0.5)
        assert threading.active_count() <= before + mlflow_http.MAX_CONNECTIONS + 2
        refused = sum(closed_within(s, 0.01) for s in socks)
        assert refused >= 200 - mlflow_http.MAX_CONNECTIONS - 2  # closed at once, no thread
        try:  # while every slot is taken a request is refused cleanly (closed) or served
            assert ep.metric() == 200
        except (ConnectionError, http.client.RemoteDisconnected):
            pass
        time.sleep(2.5)  # the idle ones time out and free their slots
        assert ep.metric() == 200
        assert threading.active_count() <= before + 2
    finally:
        for s in socks:
            s.close()


def test_no_connection_is_accepted_into_the_runners_fd_reserve(ep: Ep, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ep.metric() == 200
    monkeypatch.setattr(mlflow_http, "FD_RESERVE", 1 << 30)
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        ep.metric()
    monkeypatch.setattr(mlflow_http, "FD_RESERVE", 128)
    assert ep.metric() == 200 and ep.r.mlflow_endpoint.thread.is_alive()


RUNNER = textwrap.dedent("""
    import resource, sys, time
    from pathlib import Path
    from types import SimpleNamespace
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    from orchestrator.run import mlflow_endpoint
    from orchestrator.store.artifacts import ObjectStore
    from orchestrator.store.sqlite import SqliteStore
    tmp = Path(sys.argv[1])
    store = SqliteStore(str(tmp / "o.db"))
    store.ensure_resource_group("default")
    cfg = store.create_configuration("default", "c", "scen", "exe", [], [])
    ex = store.create_execution("default", cfg, str(tmp / "work"))
    r = SimpleNamespace(store=store, objects=ObjectStore(tmp / "home"), ex=ex, workdir=str(tmp / "work"))
    env = mlflow_endpoint.step_env(r, ex.id + "-abcdef0123", "train")
    print(env["MLFLOW_TRACKING_URI"].rsplit(":", 1)[1], env["MLFLOW_TRACKING_TOKEN"], ex.id, flush=True)
    sys.stdin.readline()
    # the runner itself still opens files after the flood
    files = [open(tmp / f"f{i}", "w") for i in range(100)]
    print("runner ok", len(files), mlflow_endpoint.Endpoint.__name__, r.mlflow_endpoint.thread.is_alive(), flush=True)
    sys.stdin.readline()
    mlflow_endpoint.stop(r)
    print("stopped", flush=True)
""")


def test_a_connection_flood_over_the_fd_limit_never_takes_the_runner_down(tmp_path: Path) -> None:
    p = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[3])
    try:
        assert p.stdout is not None and p.stdin is not None
        port_s, token, ex_id = p.stdout.readline().split()
        port, run = int(port_s), f"{ex_id}-abcdef0123"
        socks = []
        for _ in range(600):  # over the runner's limit of 256 descriptors
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        time.sleep(0.5)
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().split() == ["runner", "ok", "100", "Endpoint", "True"]
        for s in socks:
            s.close()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", API + "runs/log-metric", json.dumps({"run_id": run, "key": "k", "value": 1}),
                  {"Authorization": f"Bearer {token}"})
        assert c.getresponse().status == 200
        c.close()
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "stopped"
        assert p.wait(20) == 0, p.stderr.read() if p.stderr else ""
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_paths_are_percent_decoded_once_and_stay_inside(ep: Ep) -> None:
    base = f"{ART}scen/{ep.run}/artifacts/"
    assert ep.request("PUT", base + "a%20b.txt", b"hi")[0] == 200
    status, out = ep.request("GET", f"{ART[:-1]}?path=scen/{ep.run}/artifacts")
    assert status == 200 and [f["path"] for f in out["files"]] == ["a b.txt"]
    assert ep.request("GET", base + "a%20b.txt") == (200, b"hi")
    assert ep.request("PUT", base + "c%2520d.txt", b"x")[0] == 200  # decoded once: "c%20d.txt"
    status, out = ep.request("GET", f"{ART[:-1]}?path=scen/{ep.run}/artifacts")
    assert [f["path"] for f in out["files"]] == ["a b.txt", "c%20d.txt"]
    for bad in ("%2e%2e/%2e%2e/x", "..%2f..%2fx", "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fx", "x%00y", "%ff",
                "..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd"):
        status, out = ep.request("PUT", base + bad, b"x")
        assert status in (400, 403) and set(out) == {"error_code", "message"}, bad
    assert {p.name for p in ep.tmp.iterdir() if not p.name.startswith("o.db")} <= {"work", "home"}
    assert [p.name for p in ep.tmp.rglob("*") if p.name in ("x", "passwd", "x\x00y")] == []
    assert not (ep.tmp / "work" / "x").exists() and not (ep.tmp / "x").exists()


def test_a_real_mlflow_client_logs_a_b_txt_as_a_b_txt(ep: Ep, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    (tmp_path / "a b.txt").write_text("hi")
    code = ("import mlflow\nmlflow.log_artifact('a b.txt')\n"
            "print(sorted(f.path for f in mlflow.MlflowClient().list_artifacts(mlflow.active_run().info.run_id)))\n"
            "mlflow.end_run()\n")
    env = {**os.environ, **ep.env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "['a b.txt']" in out.stdout.splitlines(), out.stdout
    assert Session  # the transport hands the decoded path to the protocol core


def test_endpoints_no_step_connects_to_start_no_thread_and_one_connected_serves(tmp_path: Path) -> None:
    """One acceptor thread per process watches every endpoint: an endpoint's own thread starts at
    its first connection only, and an endpoint never connected to stops without one."""
    for k in range(20):
        (tmp_path / str(k)).mkdir()
    eps = [Ep(tmp_path / str(k)) for k in range(20)]
    try:
        own = [e.r.mlflow_endpoint.thread for e in eps]
        assert eps[7].metric() == 200  # accepted, served by its own thread from now on
        assert own[7].ident is not None
        assert [t.ident for k, t in enumerate(own) if k != 7] == [None] * 19
        assert eps[3].metric() == 200 and own[3].ident is not None  # the acceptor still watches the rest
    finally:
        for e in eps:
            mlflow_endpoint.stop(e.r)
    assert not any(t.is_alive() for t in own)
    for e in eps[:2]:  # stopped: nothing listens any more
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", e.port), timeout=2).close()
