"""The dashboard's navigation extension point: a feature's entry (sweeps, deployments, ...) shows
only when its ``visible`` says there is something to show, in-process through the real app."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from orchestrator.api import ui
from orchestrator.api.app import create_app
from orchestrator.control import tokens
from orchestrator.control.service import Service


def test_a_nav_entry_appears_when_its_data_exists(tmp_path: Path) -> None:
    svc = Service(tmp_path / "home", reap=False)
    svc.store.ensure_resource_group("default")
    token, _ = tokens.create(svc.store, "nav", "read")
    have = {"sweeps": False}
    entry = ui.NavEntry("sweeps", "Sweeps", "/ui/sweeps", lambda s, sess: have["sweeps"])
    ui.add_nav(entry)
    try:
        client = TestClient(create_app(svc), follow_redirects=False)
        html = client.get("/ui/login").text
        pre = re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
        assert client.post("/ui/login", data={"csrf": pre, "token": token}).status_code == 303
        page = client.get("/ui/executions").text
        assert 'data-nav="executions"' in page and 'data-nav="sweeps"' not in page
        assert 'data-nav="git"' not in page  # tenant-wide pages: unlimited admin only
        have["sweeps"] = True
        assert 'data-nav="sweeps"' in client.get("/ui/executions").text
    finally:
        ui.NAV.remove(entry)
        svc.close()
