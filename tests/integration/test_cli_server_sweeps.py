"""``orchestrator --server URL executions --sweep ID`` lists that sweep's trial executions as the
local command does (the filter was ignored: every execution of the group came back), with
``--status`` and ``--json``; an unknown sweep is an error; ``--schedule`` reaches the server too.
A real server and the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ApiServer
from tests.integration.test_sweeps import SWEEP, TEMPLATE


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ApiServer:
    tmp = tmp_path_factory.mktemp("sweep-cli-server")
    (tmp / "templates").mkdir()
    (tmp / "templates" / "napping.yaml").write_text(TEMPLATE)
    srv = ApiServer(tmp, "--workflows", str(tmp / "templates"))
    yield srv  # type: ignore[misc]
    srv.stop()


def _sweep(server: ApiServer, name: str, trials: int) -> str:
    doc = json.loads(json.dumps(SWEEP))
    doc["metadata"]["name"] = name
    doc["spec"]["limits"]["maxTotalTrials"] = trials
    status, _, created = server.call("POST", "/v2/lm/sweeps", doc)
    assert status == 202, created
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = server.call("GET", f"/v2/lm/sweeps/{created['id']}")[2]
        if body["status"] not in ("PENDING", "RUNNING"):
            assert body["status"] == "COMPLETED", body
            return str(created["id"])
        time.sleep(0.1)
    raise AssertionError("sweep did not end")


def _cli(server: ApiServer, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ORCHESTRATOR_SERVER": server.base, "ORCHESTRATOR_TOKEN": server.token,
           "ORCHESTRATOR_HOME": str(tmp / "nohome")}
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=tmp, env=env, text=True,
                          capture_output=True, timeout=60)


def test_executions_sweep_filters_to_the_sweeps_trials(server: ApiServer, tmp_path: Path) -> None:
    a, b = _sweep(server, "a", 2), _sweep(server, "b", 1)
    trials = server.call("GET", f"/v2/lm/sweeps/{a}/trials")[2]["resources"]
    p = _cli(server, tmp_path, "executions", "--sweep", a[:6], "--json")
    assert p.returncode == 0, p.stderr
    shown = json.loads(p.stdout)
    assert sorted(e["id"] for e in shown) == sorted(t["executionId"] for t in trials)
    assert {e["sweepId"] for e in shown} == {a} and sorted(e["trial"] for e in shown) == [0, 1]
    other = server.call("GET", f"/v2/lm/sweeps/{b}/trials")[2]["resources"][0]["executionId"]
    table = _cli(server, tmp_path, "executions", "--sweep", a)
    assert table.returncode == 0 and f"executions of sweep {a}" in table.stdout and other not in table.stdout
    assert json.loads(_cli(server, tmp_path, "executions", "--sweep", a, "--status", "DEAD", "--json").stdout) == []
    missing = _cli(server, tmp_path, "executions", "--sweep", "ffffffff")
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_executions_schedule_is_passed_to_the_server(server: ApiServer, tmp_path: Path) -> None:
    _sweep(server, "c", 1)  # at least one execution in the group
    everything = json.loads(_cli(server, tmp_path, "executions", "--json").stdout)
    assert everything
    p = _cli(server, tmp_path, "executions", "--schedule", "no-such-schedule", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == []  # the filter reached the server (it was dropped: every execution came back)
