"""The executions page's filters (control/dashboard) over a real store: time window, search,
status, paging, and scoping to the service's resource group."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.control import dashboard
from orchestrator.control.service import Service
from orchestrator.errors import NotFound, UsageError
from tests.conftest import template


def _seed(svc: Service, n: int, tmp: Path) -> list[str]:
    path = tmp / "t.yaml"
    path.write_text(template("dash-exe", """
- name: main
  container:
    image: python:3.11
    command: [python3, -c, pass]
"""))
    svc.store.ensure_resource_group(svc.rg)
    svc.register([str(path)])
    cfg = svc.store.create_configuration(svc.rg, "cfg", "test-scenario", "dash-exe", [], [])
    ids = [svc.store.create_execution(svc.rg, cfg, str(svc.home)).id for _ in range(n)]
    with svc.store.transaction() as db:
        for i, eid in enumerate(ids):
            db.execute("UPDATE executions SET created_at=?, status=? WHERE id=?",
                       (f"2026-03-{i + 1:02d}T12:00:00.000000Z", "DEAD" if i % 3 == 0 else "COMPLETED", eid))
    return ids


def test_filters_paging_and_scope(tmp_path: Path) -> None:
    svc = Service(tmp_path / "home", reap=False)
    try:
        ids = _seed(svc, 9, tmp_path)
        other = svc.scoped("team-b")
        foreign = _seed(other, 2, tmp_path)
        page = dashboard.list_executions(svc, per_page=25)
        assert page["count"] == 9 and not set(foreign) & {r["id"] for r in page["rows"]}
        assert dashboard.list_executions(svc, status="DEAD")["count"] == 3
        # the window is inclusive: a bare end date means the end of that day
        window = dashboard.list_executions(svc, since="2026-03-02", until="2026-03-04")
        assert sorted(r["id"] for r in window["rows"]) == sorted(ids[1:4])
        assert dashboard.list_executions(svc, search=ids[5][:12])["count"] == 1
        assert dashboard.list_executions(svc, search=foreign[0])["count"] == 0
        paged = dashboard.list_executions(svc, per_page=25, page=99)
        assert paged["page"] == 1 and paged["pages"] == 1
        with pytest.raises(UsageError):
            dashboard.list_executions(svc, status="nope")
        with pytest.raises(UsageError):
            dashboard.list_executions(svc, since="yesterday")
        with pytest.raises(NotFound):
            dashboard.live(svc, foreign[0])
        with pytest.raises(NotFound):
            dashboard.log_chunk(svc, foreign[0], "main", 0)
    finally:
        svc.close()
