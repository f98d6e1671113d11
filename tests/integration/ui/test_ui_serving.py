"""The sweep and deployment pages in a real browser (Debian's ``chromium`` driven by Playwright,
as :mod:`tests.integration.ui.test_ui_browser`), against the seeded server.

A finished sweep: its list row (trial counts, best so far), its trials table (best marked, the
trial the bandit policy stopped marked with the policy and its numbers), both charts drawn, and
the executions page filtered by it. A running sweep stopped with the page's button. The seeded
deployment of a tiny scikit-learn model: listed with its URL, its page with the predictor log,
and the "try it" form answered through the inference relay; another deployment stopped and then
deleted with the page's buttons. No console error, page error or failed request on any page;
every page gets a screenshot.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.ui.conftest import Seeded, curve_sweep, deploy_tiny
from tests.integration.ui.test_ui_browser import Page, browser  # noqa: F401 - the module's browser fixture

# one worker runs every dashboard test (--dist loadgroup): the seeded home and server of ui/conftest.py are made once
pytestmark = pytest.mark.xdist_group("ui")



@pytest.fixture
def ui(browser: Any, seeded: Seeded, tmp_path: Path) -> Iterator[Page]:  # noqa: F811
    page = Page(browser, seeded, tmp_path, seeded.server.token)
    yield page
    page.clean()


def _settled(ui: Page, selector: str) -> str:
    """The element's text, or "" while the page reloads itself (it does when the status changes)."""
    from playwright.sync_api import Error

    try:
        return ui.text(selector)
    except Error:  # the document went away mid-read (a reload): read again on the next poll
        return ""


def _wait_rest(seeded: Seeded, path: str, statuses: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = seeded.server.call("GET", path)
        assert status == 200, body
        if body["status"] in statuses:
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def test_sweep_pages(ui: Page, seeded: Seeded) -> None:
    page = ui.page
    ui.goto("/ui/executions")
    assert page.query_selector("nav a[data-nav='sweeps']") is not None
    page.click("nav a[data-nav='sweeps']")
    page.wait_for_url("**/ui/sweeps")
    row = f"#sweeps tr[data-id='{seeded.sweep_id}']"
    assert ui.attr(row, "data-status") == "COMPLETED"
    assert ui.text(f"{row} td.counts").split("of")[0].split() == ["2", "/", "0", "/", "1", "/", "0"]
    assert ui.text(f"{row} td.best-value").startswith("0.7 ")
    ui.shot("sweeps")
    page.click(f"{row} a[href='/ui/sweeps/{seeded.sweep_id}']")
    page.wait_for_url(f"**/ui/sweeps/{seeded.sweep_id}")
    page.wait_for_selector("#sweep[data-ready='1']", state="attached")
    trials = page.query_selector_all("#trials tbody tr")
    assert [t.get_attribute("data-status") for t in trials] == ["COMPLETED", "STOPPED", "COMPLETED"]
    trial_ids = {t.get_attribute("data-id") for t in trials}
    best = page.query_selector_all("#trials tbody tr.best")
    assert len(best) == 1 and best[0].get_attribute("data-trial") == "0"
    stopped = page.query_selector_all("#trials tbody tr.policy-stopped")
    assert len(stopped) == 1 and stopped[0].get_attribute("data-trial") == "1"
    note = stopped[0].inner_text()
    assert "stopped by bandit" in note and "slack_factor 0.2" in note and "interval 1" in note
    headers = page.inner_text("#trials thead")
    assert "curve" in headers and "lr" in headers and "acc" in headers
    for chart in ("#objective-chart", "#parallel-chart"):
        assert page.query_selector(f"{chart} canvas") is not None
    assert page.query_selector("#stop") is None  # a finished sweep offers no stop
    page.wait_for_timeout(300)  # the charts' first frame
    ui.shot("sweep")
    page.click("#sweep-executions")  # the executions page, filtered by this sweep
    page.wait_for_url(f"**/ui/executions?sweep={seeded.sweep_id}")
    assert page.get_attribute("#rows", "data-count") == "3"
    assert page.input_value("#sweep-filter") == seeded.sweep_id
    shown = {r.get_attribute("data-id") for r in page.query_selector_all("#executions tbody tr")}
    assert shown == trial_ids
    page.select_option("#sweep-filter", "")
    page.wait_for_url(re.compile(r"sweep=(&|$)"))
    assert int(page.get_attribute("#rows", "data-count") or 0) > 3


def test_stop_a_running_sweep(ui: Page, seeded: Seeded) -> None:
    from orchestrator.spec.sweep_kind import to_document

    doc = to_document(curve_sweep("ui-long", [[0.1] * 150, [0.2] * 150], policy=False))
    status, _, body = seeded.server.call("POST", "/v2/lm/sweeps", raw=json.dumps(doc).encode(),
                                         headers={"Content-Type": "application/json"})
    assert status == 202, body
    sweep_id = body["id"]
    deadline = time.monotonic() + 60
    while [t["status"] for t in seeded.server.call("GET", f"/v2/lm/sweeps/{sweep_id}/trials")[2]["resources"]] \
            != ["RUNNING"]:
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.1)
    page = ui.page
    ui.goto(f"/ui/sweeps/{sweep_id}")
    assert ui.attr("#trials tbody tr[data-trial='0']", "data-status") == "RUNNING"
    with page.expect_navigation():
        page.click("#stop")
    ui.until(lambda: _settled(ui, "#status") == "STOPPED", "the sweep to show STOPPED")  # the page follows it
    page.wait_for_selector("#trials tbody tr[data-trial='0'][data-status='STOPPED']", state="attached")
    page.wait_for_selector("#stop", state="detached")
    body = _wait_rest(seeded, f"/v2/lm/sweeps/{sweep_id}", ("STOPPED",))
    assert body["statusMessage"] == "stopped by request"
    page.wait_for_load_state()
    ui.shot("sweep-stopped")


def test_deployment_pages_and_try_it(ui: Page, seeded: Seeded) -> None:
    dep = seeded.deployment_id
    _wait_rest(seeded, f"/v2/lm/deployments/{dep}", ("RUNNING",))
    page = ui.page
    ui.goto("/ui/deployments")
    row = f"#deployments tr[data-id='{dep}']"
    assert ui.attr(row, "data-status") == "RUNNING"
    assert f"/v2/inference/deployments/{dep}" in ui.text(row) and "ui-tiny-serving" in ui.text(row)
    ui.shot("deployments")
    page.click(f"{row} a[href='/ui/deployments/{dep}']")
    page.wait_for_url(f"**/ui/deployments/{dep}")
    assert ui.text("#status") == "RUNNING" and ui.text("#last-operation") == "CREATE"
    ui.until(lambda: "starting" in ui.text("#log"), "the predictor log")
    page.fill("#predict-body", json.dumps({"instances": [[0, 0], [1, 1], [0.9, 1.0]]}))
    page.click("#predict")
    ui.until(lambda: ui.attr("#predict-form", "data-answered") != "", "the predictor's answer")
    assert ui.text("#predict-status") == "HTTP 200"
    assert json.loads(ui.text("#predict-answer")) == {"predictions": [0, 1, 1]}
    ui.shot("deployment")
    page.fill("#predict-path", "v1/models/ui-tiny:predict")  # KServe V1 on the same predictor
    page.fill("#predict-body", json.dumps({"instances": [[0.05, 0.1]]}))
    page.click("#predict")
    ui.until(lambda: "[\n    0\n  ]" in ui.text("#predict-answer"), "the V1 answer")
    assert ui.text("#predict-status") == "HTTP 200"


def test_stop_and_delete_a_deployment(ui: Page, seeded: Seeded) -> None:
    dep = deploy_tiny(seeded.server)
    page = ui.page
    ui.goto(f"/ui/deployments/{dep}")
    ui.until(lambda: _settled(ui, "#status") == "RUNNING", "the deployment to show RUNNING")  # it follows
    with page.expect_navigation():
        page.click("#stop")
    ui.until(lambda: _settled(ui, "#status") == "STOPPED", "the deployment to show STOPPED")
    page.wait_for_selector("#stop", state="detached")
    page.wait_for_selector("#predict[disabled]", state="attached")
    assert _wait_rest(seeded, f"/v2/lm/deployments/{dep}", ("STOPPED",))["targetStatus"] == "STOPPED"
    page.wait_for_load_state()
    ui.shot("deployment-stopped")
    with page.expect_navigation(url="**/ui/deployments"):
        page.click("#delete")
    assert page.query_selector(f"#deployments tr[data-id='{dep}']") is None
    assert seeded.server.call("GET", f"/v2/lm/deployments/{dep}")[0] == 404
