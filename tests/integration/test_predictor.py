"""``python -m orchestrator.serve`` as a real process on a random loopback port, over real HTTP.

One predictor serves the module (start-up costs a second or two); it must answer the three
protocols, survive hostile clients (huge bodies, chunked bodies, slow senders, oversized heads,
garbage) and stop cleanly on SIGTERM. Refusals (digest mismatch, a pickle under ``--format
skops``) exit 3 before anything is deserialized: the biting pickle's marker file never appears.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.serve.serve_helpers import evil_pickle, sha

# one worker runs the whole module (--dist loadgroup): its module-scoped model and predictor are made once
pytestmark = pytest.mark.xdist_group("predictor")


REPO = Path(__file__).resolve().parents[2]
sio = pytest.importorskip("skops.io", reason="the predictor's safe format")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}


def serve(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.serve", *args]


class Predictor:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc, self.port = proc, port

    def call(self, method: str, path: str, body: Any = None, ctype: str = "application/json") -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        raw = body if isinstance(body, bytes) else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=raw, headers={"Content-Type": ctype} if raw is not None else {})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, json.loads(data) if data.strip() else None

    def raw(self, payload: bytes, wait: float = 0.0) -> bytes:
        """Send bytes as they are; return what the server answers before it closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(payload)
            if wait:
                time.sleep(wait)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


@pytest.fixture(scope="module")
def data() -> Any:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, data: Any) -> Path:
    """The shipped training workflow's layout: model.skops plus model.json with feature names."""
    from sklearn.linear_model import LogisticRegression

    d = tmp_path_factory.mktemp("model") / "model"
    d.mkdir()
    sio.dump(LogisticRegression(solver="liblinear").fit(data.data, data.target), d / "model.skops")
    (d / "model.json").write_text(json.dumps({"feature_names": [str(n) for n in data.feature_names]}))
    return d


@pytest.fixture(scope="module")
def predictor(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Predictor]:
    from orchestrator.store.artifacts import tree_digest

    ready = tmp_path_factory.mktemp("run") / "ready.json"
    proc = subprocess.Popen(serve("--model", str(model_dir), "--sha256", tree_digest(model_dir), "--name", "bc",
                                  "--port", "0", "--ready-file", str(ready), "--max-body-bytes", "100000",
                                  "--request-timeout", "1"),
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the predictor never became ready"
        time.sleep(0.02)
    info = json.loads(ready.read_text())
    assert info["pid"] == proc.pid and info["port"] > 0
    yield Predictor(proc, info["port"])
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_three_protocols_over_http(predictor: Predictor, data: Any) -> None:
    names = [str(n) for n in data.feature_names]
    row = [float(v) for v in data.data[0]]
    status, v1 = predictor.call("POST", "/v1/models/bc:predict", {"instances": [row, row]})
    assert status == 200 and len(v1["predictions"]) == 2 and v1["predictions"][0] in (0, 1)
    want = v1["predictions"][:1]
    assert predictor.call("GET", "/v1/models/bc") == (200, {"name": "bc", "ready": True})
    assert predictor.call("GET", "/v2/health/ready")[0] == 200
    status, v2 = predictor.call("POST", "/v2/models/bc/infer", {"inputs": [
        {"name": "input-0", "shape": [1, 30], "datatype": "FP64", "data": row}]})
    assert status == 200 and v2["outputs"][0]["data"] == want
    import pandas as pd  # the payloads MLflow's docs build for `mlflow models serve`

    frame = pd.DataFrame([row], columns=names)
    split = {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
    assert predictor.call("POST", "/invocations", split) == (200, {"predictions": want})
    assert predictor.call("POST", "/invocations", frame.to_csv(index=False).encode(), "text/csv") == (
        200, {"predictions": want})
    assert predictor.call("GET", "/ping")[0] == 200


def test_hostile_clients_get_4xx_and_the_predictor_lives_on(predictor: Predictor, data: Any) -> None:
    # a body over the cap is refused from its Content-Length, before it is sent
    answer = predictor.raw(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 100000000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ") and b'"error_code"' in answer
    answer = predictor.raw(b"POST /v1/models/bc:predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 411 ") and b'"error"' in answer
    answer = predictor.raw(b"GET /v2/health/live HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert predictor.raw(b"\x16\x03\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    # a slow client: half a request, then silence -> 408 after --request-timeout (1 s)
    answer = predictor.raw(b"POST /v2/models/bc/infer HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"inp", wait=0.1)
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"error"' in answer
    # a client that goes away mid-body
    with socket.create_connection(("127.0.0.1", predictor.port)) as s:
        s.sendall(b"POST /invocations HTTP/1.1\r\nContent-Length: 500\r\n\r\n{")
    # the Expect: 100-continue handshake curl uses for larger bodies
    body = json.dumps({"instances": [[float(v) for v in data.data[1]]]}).encode()
    answer = predictor.raw(b"POST /v1/models/bc:predict HTTP/1.1\r\nExpect: 100-continue\r\nConnection: close\r\n"
                           b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
    status, out = predictor.call("POST", "/v1/models/bc:predict", {"instances": [[1.0, 2.0]]})
    assert status == 400 and "30 features" in out["error"]
    assert predictor.proc.poll() is None
    assert predictor.call("POST", "/v1/models/bc:predict", {"instances": [[0.0] * 30]})[0] == 200


def test_a_port_in_use_exits_5(predictor: Predictor, model_dir: Path) -> None:
    from orchestrator.store.artifacts import tree_digest

    p = subprocess.run(serve("--model", str(model_dir), "--sha256", tree_digest(model_dir), "--name", "bc",
                             "--port", str(predictor.port)), env=_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 5 and p.stderr.startswith("error: cannot listen on"), p.stderr


def test_sigterm_stops_gracefully(predictor: Predictor) -> None:
    keep = http.client.HTTPConnection("127.0.0.1", predictor.port, timeout=10)
    keep.request("GET", "/v2/health/live")
    assert keep.getresponse().read() == b'{"live":true}'  # an idle keep-alive connection stays open
    predictor.proc.send_signal(signal.SIGTERM)
    assert predictor.proc.wait(timeout=20) == 0
    keep.close()


def test_refusals_exit_3_and_never_run_the_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    bad = tmp_path / "model.pkl"
    bad.write_bytes(evil_pickle(marker))
    d = tmp_path / "dir"
    d.mkdir()
    (d / "model.pkl").write_bytes(evil_pickle(marker))
    from orchestrator.store.artifacts import tree_digest

    cases = [(str(bad), "0" * 64, "auto", "sha256 mismatch"),   # foreign or tampered bytes
             (str(d), "f" * 64, "auto", "sha256 mismatch"),
             (str(bad), sha(bad.read_bytes()), "skops", "not skops"),  # the digest matches, the format is refused
             (str(d), tree_digest(d), "skops", "not skops")]
    for path, digest, fmt, reason in cases:
        p = subprocess.run(serve("--model", path, "--sha256", digest, "--name", "m", "--port", "0", "--format", fmt),
                           env=_env(), capture_output=True, text=True, timeout=60)
        assert p.returncode == 3, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], p.stderr
        assert p.stdout == ""
    p = subprocess.run(serve("--model", str(bad), "--sha256", "0" * 64, "--name", "m", "--port", "0",
                             "--host", "0.0.0.0"), env=_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "loopback" in p.stderr  # never listens beyond this machine
    assert not marker.exists()
