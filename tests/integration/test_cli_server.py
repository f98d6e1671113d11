"""The CLI's read and run commands against a real server (``--server`` / ORCHESTRATOR_SERVER)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import ApiServer


def _cli(server: ApiServer, cwd: Path, *args: str, token: str | None = None, check: int | None = 0,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # A different working directory and home: nothing is read from the server's home.
    full = {**os.environ, "ORCHESTRATOR_HOME": str(cwd / "elsewhere"), "ORCHESTRATOR_SERVER": server.base,
            "ORCHESTRATOR_TOKEN": server.token if token is None else token, **(env or {})}
    p = subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, env=full, text=True,
                       capture_output=True, timeout=180)
    if check is not None and p.returncode != check:
        raise AssertionError(f"exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def test_run_and_read_through_a_server(api_server: ApiServer, tmp_path: Path) -> None:
    here = tmp_path / "client"
    here.mkdir()
    done = json.loads(_cli(api_server, here, "run", "sklearn-train", "-p", "n-estimators=20", "--json").stdout)
    assert done["status"] == "COMPLETED"
    names = {a["name"] for a in done["outputArtifacts"]}
    assert "breast-cancer-model" in names
    assert not (here / "elsewhere" / "orchestrator.db").exists()  # the client wrote no local store

    listed = json.loads(_cli(api_server, here, "executions", "--json").stdout)
    assert [e["id"] for e in listed] == [done["id"]]
    shown = json.loads(_cli(api_server, here, "executions", "show", done["id"], "--json").stdout)
    assert {m["name"] for m in shown["metrics"]} >= {"precision", "recall"}
    metrics = json.loads(_cli(api_server, here, "metrics", done["id"], "--json").stdout)
    assert metrics["executionId"] == done["id"] and metrics["metrics"]
    logs = _cli(api_server, here, "logs", done["id"]).stdout
    assert "train | " in logs
    arts = json.loads(_cli(api_server, here, "artifacts", "--execution", done["id"], "--json").stdout)
    assert {a["name"] for a in arts} == names

    # the same errors as locally: unknown parameter is a binding error (exit 2), nothing started
    bad = _cli(api_server, here, "run", "sklearn-train", "-p", "N-estimators=3", check=2)
    assert "unknown parameter 'N-estimators'" in bad.stderr
    assert len(json.loads(_cli(api_server, here, "executions", "--json").stdout)) == 1
    missing = _cli(api_server, here, "executions", "show", "feedbeeffeedbeef", check=2)
    assert "not found" in missing.stderr
    denied = _cli(api_server, here, "executions", token="orc_wrong", check=2)
    assert "refused the token (401)" in denied.stderr
    assert "orc_wrong" not in denied.stderr + denied.stdout
    local_only = _cli(api_server, here, "validate", "x.yaml", check=2)
    assert "does not work with --server" in local_only.stderr
