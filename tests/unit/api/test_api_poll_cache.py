"""The execution GET reuses its encoded answer only while the database is unchanged: a commit by
another connection (another process: the runner, the CLI) or by the server itself is seen at once."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from orchestrator.control import tokens
from orchestrator.control.service import Service
from orchestrator.model import Configuration, Status
from orchestrator.store.sqlite import SqliteStore


def test_polled_execution_is_never_stale(tmp_path: Path) -> None:
    from orchestrator.api.app import create_app

    svc = Service(tmp_path / "home")
    svc.store.ensure_resource_group("default")
    plain, _ = tokens.create(svc.store, "t", "admin")
    cfg = Configuration("cfg-1", "c", "scn", "exe", (), (), "2024-01-01T00:00:00Z", "default")
    other = SqliteStore(str(tmp_path / "home" / "orchestrator.db"))  # a runner's connection
    with other.transaction() as db:
        db.execute("INSERT INTO configurations(rg, id, name, scenario_id, executable_id, parameter_bindings, "
                   "input_artifact_bindings, created_at) VALUES ('default','cfg-1','c','scn','exe','[]','[]','x')")
    ex = other.create_execution("default", cfg, str(tmp_path / "w"))
    headers = {"Authorization": f"Bearer {plain}", "AI-Resource-Group": "default"}
    with TestClient(create_app(svc)) as client:
        url = f"/v2/lm/executions/{ex.id}"
        assert client.get(url, headers=headers).json()["status"] == "UNKNOWN"
        assert client.get(url, headers=headers).json()["status"] == "UNKNOWN"  # served again, unchanged
        assert client.get(url + "?$select=status", headers=headers).json()["status"] == "UNKNOWN"
        other.set_status("default", ex.id, Status.PENDING)  # another connection commits
        assert client.get(url, headers=headers).json()["status"] == "PENDING"
        assert client.get(url + "?$select=status", headers=headers).json()["status"] == "PENDING"
        other.set_status("default", ex.id, Status.RUNNING)
        assert client.get(url + "?$select=status", headers=headers).json()["status"] == "RUNNING"
        assert client.delete(url, headers=headers).status_code == 202  # the server's own write
        assert client.get(url, headers=headers).status_code == 404
    other.close()
