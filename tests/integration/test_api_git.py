"""``/v2/admin/repositories`` and ``/v2/admin/applications`` over the real app (in-process HTTP).

The routes live in :mod:`orchestrator.api.routes_git`; if ``create_app`` does not mount them yet,
the test mounts them the same way ``create_app`` mounts its other routers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from orchestrator.api import routes_git  # noqa: E402
from orchestrator.api.app import create_app  # noqa: E402
from orchestrator.control import tokens  # noqa: E402
from orchestrator.control.service import Service  # noqa: E402
from tests.integration.test_sync import commit, config, schedule, tpl  # noqa: E402
from tests.unit.git.test_gitsync import new_repo  # noqa: E402


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], Service]]:
    svc = Service(tmp_path / "home", reap=False)
    svc.store.ensure_resource_group("default")
    token = (tokens.ensure_admin_file(svc.store, svc.home) or svc.home / "admin-token").read_text().strip()
    app = create_app(svc)
    paths = {getattr(r, "path", "") for r in app.router.routes}
    if "/v2/admin/repositories" not in paths:
        app.router.routes[:0] = routes_git.router.routes
    with TestClient(app) as c:
        yield c, {"Authorization": f"Bearer {token}", "AI-Resource-Group": "default"}, svc
    svc.close()


def test_repositories_applications_refresh_and_status(client: Any, tmp_path: Path) -> None:
    c, h, svc = client
    repo = new_repo(tmp_path / "repo", {"wf/t.yaml": tpl("train") + "---\n" + config("cfg", "train"),
                                        "wf/s.yaml": schedule("hourly", "cfg"),
                                        "wf/bad.yaml": tpl("bad").replace("entrypoint: main", "entrypoint: x")})
    secret = "tok-3f9a7c"
    r = c.post("/v2/admin/repositories", json={"name": "ml", "url": f"file://{repo}"}, headers=h)
    assert r.status_code == 200 and r.json()["id"] == "ml"
    r = c.post("/v2/admin/repositories", json={"name": "remote", "url": "https://git.example.org/r.git",
                                               "username": "bot", "password": secret}, headers=h)
    assert r.status_code == 200
    listed = c.get("/v2/admin/repositories", headers=h)
    assert listed.json()["count"] == 2 and secret not in listed.text
    assert c.post("/v2/admin/repositories", json={"name": "x", "url": "ext::sh -c id"}, headers=h).status_code == 400
    assert c.post("/v2/admin/repositories", json={"name": "ml", "url": f"file://{repo}"}, headers=h).status_code == 400
    r = c.post("/v2/admin/applications", json={"applicationName": "training", "repositoryUrl": f"file://{repo}",
                                               "revision": "main", "path": "wf"}, headers=h)
    assert r.status_code == 200, r.text
    assert c.get("/v2/admin/applications/training", headers=h).json()["repositoryName"] == "ml"
    r = c.post("/v2/admin/applications/training/refresh", headers=h)
    assert r.status_code == 202 and "SYNCED_WITH_ERRORS" in r.json()["message"]
    st = c.get("/v2/admin/applications/training/status", headers=h).json()
    assert st["healthStatus"] == "Degraded" and st["syncStatus"] == "OutOfSync"
    files = {f["path"]: f for f in st["files"]}
    assert files["wf/bad.yaml"]["status"] == "invalid" and files["wf/bad.yaml"]["errors"][0].startswith("wf/bad.yaml:")
    assert {(x["kind"], x["name"]) for x in st["syncRessourcesStatus"]} == {
        ("executable", "train"), ("configuration", "cfg"), ("schedule", "hourly")}
    commit(repo, {}, remove=("wf/bad.yaml",))
    c.post("/v2/admin/applications/training/refresh", headers=h)
    st = c.get("/v2/admin/applications/training/status", headers=h).json()
    assert st["healthStatus"] == "Healthy" and st["commitSha"] == svc.sync("training")[0].commit
    assert c.get("/v2/admin/applications/nope/status", headers=h).status_code == 404
    assert c.delete("/v2/admin/repositories/ml", headers=h).status_code == 400  # still used
    assert c.delete("/v2/admin/applications/training", headers=h).status_code == 200
    assert c.delete("/v2/admin/repositories/ml", headers=h).status_code == 200
    reader = tokens.create(svc.store, "reader", "read")[0]
    assert c.get("/v2/admin/repositories", headers={**h, "Authorization": f"Bearer {reader}"}).status_code == 403


def test_serve_syncs_on_its_interval_and_runs_schedules(tmp_path: Path) -> None:
    from tests.integration.conftest import ApiServer

    repo = new_repo(tmp_path / "repo", {
        "wf/t.yaml": tpl("train") + "---\n" + config("cfg", "train"),
        "wf/s.yaml": schedule("every-minute", "cfg", cron="* * * * *", extra="  start: 2025-01-01T00:00:00Z\n")})
    (tmp_path / "srv").mkdir()
    server = ApiServer(tmp_path / "srv", "--sync-interval", "0.3", "--schedule-interval", "0.3")
    try:
        assert server.call("POST", "/v2/admin/repositories", {"name": "ml", "url": str(repo)})[0] == 200
        assert server.call("POST", "/v2/admin/applications", {"applicationName": "training", "repositoryName": "ml",
                                                              "revision": "main", "path": "wf"})[0] == 200
        deadline = time.monotonic() + 30
        done: list[Any] = []
        while time.monotonic() < deadline and not done:  # no refresh: the sync loop, then the scheduler
            _, _, body = server.call("GET", "/v2/lm/executions")
            done = [e for e in body["resources"] if e["status"] in ("COMPLETED", "DEAD")]
            time.sleep(0.2)
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:  # a sync every 0.3 s: between two, the status is settled
            _, _, st = server.call("GET", "/v2/admin/applications/training/status")
            if st["healthStatus"] != "Progressing":
                break
            time.sleep(0.05)
        assert st["healthStatus"] == "Healthy", st
        assert done and done[0]["status"] == "COMPLETED", server.output()
        sched = done[0]["executionScheduleId"]
        _, _, by_schedule = server.call("GET", f"/v2/lm/executions?executionScheduleId={sched}")
        assert [e["id"] for e in by_schedule["resources"]] == [done[0]["id"]]
        svc = Service(server.home, reap=False)
        assert svc.store.get_execution("default", done[0]["id"]).commit_sha == st["commitSha"]
        # its steps got a tracking endpoint of this server, like executions created through the API
        caps = svc.store.db.execute("SELECT COUNT(*) FROM tokens WHERE kind='tracking' AND execution_id=?",
                                    (done[0]["id"],)).fetchone()[0]
        assert caps == 1
        svc.close()
    finally:
        server.stop()


def test_application_resource_group_must_be_valid_and_exist(client: Any, tmp_path: Path) -> None:
    """Issue 5 review item 3b: ``AI-Resource-Group`` of a new application is validated and must
    name an existing group; ``(admin)`` (where repository credentials live) never becomes a group."""
    c, h, svc = client
    repo = new_repo(tmp_path / "repo", {"wf/t.yaml": tpl("train")})
    assert c.post("/v2/admin/repositories", json={"name": "ml", "url": f"file://{repo}"}, headers=h).status_code == 200
    body = {"applicationName": "training", "repositoryName": "ml", "revision": "main", "path": "wf"}
    for bad in ("(admin)", "a", "-x-", "x" * 70):
        r = c.post("/v2/admin/applications", json=body, headers={**h, "AI-Resource-Group": bad})
        assert r.status_code == 400, (bad, r.text)
    r = c.post("/v2/admin/applications", json=body, headers={**h, "AI-Resource-Group": "no-such-group"})
    assert r.status_code == 404 and "no-such-group" in r.text
    assert set(svc.store.resource_groups()) == {"default"}
    assert c.get("/v2/admin/applications", headers=h).json()["count"] == 0
    assert c.post("/v2/admin/applications", json=body, headers=h).status_code == 200
    assert c.get("/v2/admin/applications/training", headers=h).json()["resourceGroupId"] == "default"


def test_refresh_does_not_stall_the_event_loop(client: Any, tmp_path: Path) -> None:
    """Issue 5 review item 9: a refresh waits for git (here: for the sync lock another sync holds)
    off the event loop; the rest of the API keeps answering meanwhile."""
    import threading

    from orchestrator.control import syncing

    c, h, svc = client
    repo = new_repo(tmp_path / "repo", {"wf/t.yaml": tpl("train")})
    url = f"file://{repo}"
    assert c.post("/v2/admin/repositories", json={"name": "ml", "url": url}, headers=h).status_code == 200
    assert c.post("/v2/admin/applications", json={"applicationName": "training", "repositoryName": "ml",
                                                  "revision": "main", "path": "wf"}, headers=h).status_code == 200
    lock = syncing._LOCKS.setdefault(url, threading.Lock())
    answers: dict[str, Any] = {}

    def refresh() -> None:
        answers["refresh"] = c.post("/v2/admin/applications/training/refresh", headers=h)

    def health() -> None:
        t0 = time.monotonic()
        answers["health"] = c.get("/v2/lm/healthz", headers=h)
        answers["health_s"] = time.monotonic() - t0

    lock.acquire()  # a sync of the same remote is "running" (the background loop, a slow fetch)
    try:
        refresher = threading.Thread(target=refresh)
        refresher.start()
        time.sleep(0.5)
        assert refresher.is_alive()  # the refresh waits for the lock
        checker = threading.Thread(target=health)
        checker.start()
        checker.join(5)
    finally:
        lock.release()
    refresher.join(60)
    checker.join(60)
    assert answers["health"].status_code == 200 and answers["health_s"] < 2, answers["health_s"]
    assert answers["refresh"].status_code == 202 and "SYNCED" in answers["refresh"].json()["message"]
    st = c.get("/v2/admin/applications/training/status", headers=h).json()
    assert st["healthStatus"] == "Healthy" and svc.store.executable_origin("default", "train")[0] == st["commitSha"]
