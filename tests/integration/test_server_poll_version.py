"""The polled execution GET is answered from cache only while the database is unchanged, now that
"unchanged" is read from SQLite's WAL-index header instead of ``PRAGMA data_version`` (issue item 26:
that pragma's locks and fstat were the largest per-request cost). A real server; the writes come
from this test process — another process to the server, like a runner or the CLI.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from orchestrator.store.sqlite import SqliteStore
from orchestrator.store.walindex import WalIndex
from tests.integration.conftest import ApiServer


def _finished_execution(srv: ApiServer) -> str:
    status, _, cfg = srv.call("POST", "/v2/lm/configurations", {
        "name": "poll", "scenarioId": "orchestrator-demo", "executableId": "failing-step"})
    assert status == 201, cfg
    status, _, ex = srv.call("POST", "/v2/lm/executions", {"configurationId": cfg["id"]})
    assert status == 202, ex
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = srv.call("GET", f"/v2/lm/executions/{ex['id']}")[2]
        if body["status"] in ("COMPLETED", "DEAD", "STOPPED"):
            return str(ex["id"])
        time.sleep(0.2)
    raise AssertionError("the execution did not finish")


def test_every_commit_of_another_process_is_seen_by_the_next_poll(api_server: ApiServer) -> None:
    eid = _finished_execution(api_server)
    url = f"/v2/lm/executions/{eid}"
    db = sqlite3.connect(api_server.home / "orchestrator.db", timeout=30, isolation_level=None)
    try:
        for i in range(60):
            first = api_server.call("GET", url)[2]
            assert api_server.call("GET", url)[2] == first  # served again (from the cache)
            db.execute("UPDATE executions SET status_message=? WHERE id=?", (f"note {i}", eid))
            assert api_server.call("GET", url)[2]["statusMessage"] == f"note {i}", i
            assert api_server.call("GET", url + "?$select=status")[2]["status"] == first["status"]
    finally:
        db.close()


def test_the_header_changes_with_every_commit_and_falls_back_without_a_shm(tmp_path: Path) -> None:
    path = str(tmp_path / "orchestrator.db")
    store = SqliteStore(path)
    other = SqliteStore(path)
    try:
        store.ensure_resource_group("a")
        seen = {store.version()}
        for i in range(20):
            other.ensure_resource_group(f"g{i}")  # another connection commits
            v = store.version()
            assert isinstance(v[0], bytes) and v not in seen, i
            seen.add(v)
        assert store.version() == store.version()  # nothing committed: unchanged
    finally:
        other.close()
        store.close()
    assert WalIndex(str(tmp_path / "missing.db")).header() is None  # the caller uses data_version then
