"""``compare`` and ``models ...`` with ``--server``: the CLI against a real server, same output as locally."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.conftest import ApiServer
from tests.integration.test_cli_server import _cli


def _json(server: ApiServer, cwd: Path, *args: str) -> Any:
    return json.loads(_cli(server, cwd, *args, "--json").stdout)


def _local(server: ApiServer, *args: str) -> Any:
    """The same command run locally on the server's home (no --server)."""
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRATOR_SERVER"}
    p = subprocess.run([sys.executable, "-m", "orchestrator", "--home", str(server.home), *args, "--json"],
                       cwd=server.tmp, env=env, text=True, capture_output=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_compare_and_models_through_a_server(api_server: ApiServer, tmp_path: Path) -> None:
    here = tmp_path / "client"
    here.mkdir()
    runs = [_json(api_server, here, "run", "sklearn-train", "-p", f"n-estimators={n}", "-p", "max-depth=2")
            for n in (3, 5)]
    assert [r["status"] for r in runs] == ["COMPLETED", "COMPLETED"]
    assert not (here / "elsewhere" / "orchestrator.db").exists()  # nothing local

    # compare: the server's answer, printed as the local command prints it
    remote = _json(api_server, here, "compare", "--executable", "sklearn-train", "--sort", "f1")
    assert remote == _local(api_server, "compare", "--executable", "sklearn-train", "--sort", "f1")
    assert {r["id"] for r in remote["executions"]} == {r["id"] for r in runs}
    assert remote["differingParameters"] == ["n-estimators"] and remote["bestExecutionId"]
    table = _cli(api_server, here, "compare", *[r["id"] for r in runs]).stdout
    assert runs[0]["id"] in table and "n-estimators" in table
    csv = _cli(api_server, here, "compare", runs[0]["id"], "--csv").stdout.splitlines()
    assert csv[0].startswith("id,status,duration,best") and csv[1].startswith(runs[0]["id"])
    missing = _cli(api_server, here, "compare", "feedbeeffeedbeef", check=2)
    assert "feedbeeffeedbeef" in missing.stderr

    # models: both runs registered a version of breast-cancer on success
    models = _json(api_server, here, "models", "list")
    assert models == _local(api_server, "models", "list")
    (bc,) = [m for m in models if m["name"] == "breast-cancer"]
    assert bc["versionCount"] == 2 and bc["aliases"] == {}
    of_run = _json(api_server, here, "models", "list", "--execution", runs[1]["id"])
    assert [(v["model"], v["version"], v["executionId"]) for v in of_run] == [("breast-cancer", 2, runs[1]["id"])]

    moved = _json(api_server, here, "models", "alias", "breast-cancer", "champion", "1")
    assert moved == {"model": "breast-cancer", "alias": "champion", "version": 1, "previousVersion": None}
    assert _json(api_server, here, "models", "alias", "breast-cancer", "champion", "2", "--expect", "1")[
        "previousVersion"] == 1
    stale = _cli(api_server, here, "models", "alias", "breast-cancer", "champion", "1", "--expect", "1", check=None)
    assert stale.returncode != 0 and "champion" in stale.stderr
    champion = _json(api_server, here, "models", "show", "breast-cancer", "--version", "champion")
    assert champion["version"] == 2 and champion["lineage"]["execution"]["id"] == runs[1]["id"]
    assert champion == _local(api_server, "models", "show", "breast-cancer", "--version", "champion")
    text = _cli(api_server, here, "models", "show", "breast-cancer", "--version", "latest").stdout
    assert "breast-cancer version 2" in text and "champion" in text
    shown = _json(api_server, here, "models", "show", "breast-cancer")
    assert [v["version"] for v in shown["versions"]] == [2, 1] and shown["aliases"] == {"champion": 2}
    assert shown == _local(api_server, "models", "show", "breast-cancer")

    updated = _json(api_server, here, "models", "update", "breast-cancer", "1", "--description", "small",
                    "--tag", "team=ml")
    assert updated["description"] == "small" and updated["tags"] == [{"key": "team", "value": "ml"}]
    again = _json(api_server, here, "models", "register", "bc-copy", "--execution", runs[0]["id"],
                  "--output", "breast-cancer-model", "--alias", "staging")
    assert (again["model"], again["version"], again["aliases"]) == ("bc-copy", 1, ["staging"])
    assert _json(api_server, here, "models", "unalias", "bc-copy", "staging")["previousVersion"] == 1
