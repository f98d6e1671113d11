"""The dashboard in a real browser: Debian's ``chromium`` driven by Playwright (never a downloaded
browser), against the seeded server.

Loads every page and clicks through the main flows: filter executions and open one, watch a
running execution's DAG and log change live, compare three runs (best marked, charts drawn),
stop a run, move a model alias, switch resource group and fail to see the other group's runs.
Every page must load without a console error, an uncaught exception or a failed request (a
request the page itself aborted by navigating away is not a failure), and gets a screenshot
(in ``tmp_path``; with ``ORCHESTRATOR_UI_SCREENSHOTS=DIR`` also there, which is how
``docs/screenshots`` is made).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.ui.conftest import Seeded, submit

# one worker runs every dashboard test (--dist loadgroup): the seeded home and server of ui/conftest.py are made once
pytestmark = pytest.mark.xdist_group("ui")


CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT = 20_000  # ms, for waits on the live page

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (.ci/run installs it with apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A logged-in page that records console errors, page errors and failed requests."""

    def __init__(self, browser: Any, seeded: Seeded, shots: Path, token: str) -> None:
        self.ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(TIMEOUT)
        self.base = seeded.base
        self.shots = shots
        self.problems: list[str] = []
        self.expected_status: set[str] = set()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("response", lambda r: self.problems.append(f"HTTP {r.status} {r.url}")
                     if r.status >= 400 and r.url not in self.expected_status else None)
        self.goto("/ui/executions")
        assert "/ui/login" in self.page.url
        self.page.fill("#token", token)
        self.page.click("#login")
        self.page.wait_for_url("**/ui/executions")

    def _console(self, m: Any) -> None:
        if m.type != "error":
            return
        if m.text.startswith("Failed to load resource") and (m.location or {}).get("url") in self.expected_status:
            return  # the 404 a test asked for
        self.problems.append(f"console {m.type}: {m.text} at {(m.location or {}).get('url')}")

    def _failed(self, request: Any) -> None:
        if request.failure and "ERR_ABORTED" in request.failure:  # cancelled by a navigation of ours
            return
        self.problems.append(f"request failed: {request.url} {request.failure}")

    def until(self, check: Any, what: str) -> None:
        """Poll ``check()`` (Python, reading the DOM: the page's CSP forbids evaluated strings)."""
        import time

        deadline = time.monotonic() + TIMEOUT / 1000
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.page.wait_for_timeout(100)

    def attr(self, selector: str, name: str) -> str:
        el = self.page.query_selector(selector)
        return (el.get_attribute(name) or "") if el else ""

    def text(self, selector: str) -> str:
        el = self.page.query_selector(selector)
        return el.text_content() or "" if el else ""

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)

    def shot(self, name: str) -> None:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        target = os.environ.get("ORCHESTRATOR_UI_SCREENSHOTS")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(target) / path.name)

    def clean(self) -> None:
        assert self.problems == [], self.problems
        self.ctx.close()


@pytest.fixture
def ui(browser: Any, seeded: Seeded, tmp_path: Path) -> Iterator[Page]:
    page = Page(browser, seeded, tmp_path, seeded.server.token)
    yield page
    page.clean()


def test_every_page_loads(ui: Page, seeded: Seeded) -> None:
    pages = {
        "executions": "/ui/executions",
        "execution-completed": f"/ui/executions/{seeded.train_ids[1]}",
        "execution-failed": f"/ui/executions/{seeded.failed_id}",
        "compare": "/ui/compare?" + "&".join(f"ids={i}" for i in seeded.train_ids),
        "compare-pick": "/ui/compare",
        "models": "/ui/models",
        "model": "/ui/models/ui-model",
        "schedules": "/ui/schedules",
        "schedule": f"/ui/schedules/{seeded.schedule_id}",
        "git": "/ui/git",
        "git-app": "/ui/git/app",
    }
    for name, path in pages.items():
        ui.goto(path)
        if name.startswith("execution-"):
            ui.page.wait_for_selector("#dag[data-ready='1']", state="attached")
            ui.page.wait_for_selector("#charts[data-ready='1']", state="attached")
            ui.until(lambda: ui.text("#log"), "a log")
        if name == "compare":
            ui.page.wait_for_selector("#compare[data-ready='1']", state="attached")
        ui.shot(name)
    page = ui.page
    ui.goto(f"/ui/executions/{seeded.failed_id}")
    ui.until(lambda: "about to fail" in ui.text("#log"), "the failed step's log")
    assert page.inner_text("#status") == "DEAD"
    page.wait_for_selector("#charts[data-ready='1']", state="attached")
    assert len(page.query_selector_all("#charts .chart")) == 12
    ui.until(lambda: len(page.query_selector_all("#charts .chart canvas")) >= 8, "the first charts")
    assert len(page.query_selector_all("#charts .chart canvas")) < 12  # the others wait until scrolled to
    page.query_selector_all("#charts .chart")[-1].scroll_into_view_if_needed()
    ui.until(lambda: len(page.query_selector_all("#charts .chart canvas")) == 12, "every chart after scrolling")
    ui.goto("/ui/git/app")
    assert re.search(r"bad\.yaml:\d+:\d+:", page.inner_text("#files"))
    ui.goto(f"/ui/schedules/{seeded.schedule_id}")
    assert "only the newest missed slot runs" in page.inner_text("#past-slots")
    assert len(page.query_selector_all("#next-slots li.mono")) == 5


def test_filter_executions_and_open_one(ui: Page, seeded: Seeded) -> None:
    page = ui.page
    total = int(page.get_attribute("#rows", "data-count") or 0)
    assert total >= 4
    page.select_option("select[name=status]", "DEAD")
    page.wait_for_url(re.compile(r"status=DEAD"))
    assert page.get_attribute("#rows", "data-count") == "2"  # ui-fail and ui-flaky
    statuses = [r.get_attribute("data-status") for r in page.query_selector_all("#executions tbody tr")]
    assert statuses == ["DEAD", "DEAD"]
    page.select_option("select[name=status]", "")
    page.wait_for_url(re.compile(r"status=&|status=$"))
    page.fill("#q", seeded.train_ids[2][:10])
    page.wait_for_url(re.compile("q=" + seeded.train_ids[2][:10]))
    assert page.get_attribute("#rows", "data-count") == "1"
    page.click(f"a[href='/ui/executions/{seeded.train_ids[2]}']")
    page.wait_for_url(f"**/ui/executions/{seeded.train_ids[2]}")
    page.wait_for_selector("#dag[data-ready='1']", state="attached")
    assert "0.2" in page.inner_text("#parameters")
    assert "ui-model v3" in page.inner_text("#outputs")


def test_watch_a_running_execution_live(ui: Page, seeded: Seeded) -> None:
    eid = submit(seeded, seeded.slow_config)
    page = ui.page
    ui.goto(f"/ui/executions/{eid}")
    page.wait_for_selector("#dag[data-ready='1']", state="attached")
    ui.until(lambda: "work=RUNNING" in ui.attr("#dag", "data-states"), "step work RUNNING in the DAG")
    page.select_option("#log-step", "work")
    ui.until(lambda: "working " in ui.text("#log"), "the first log line")
    first = ui.text("#log")
    assert "working 15/15" not in first  # seen while the step still ran
    ui.until(lambda: "working 15/15" in ui.text("#log"), "the last log line")
    assert len(ui.text("#log")) > len(first)  # the log grew while we watched
    ui.shot("execution-running")
    ui.until(lambda: "report=SUCCEEDED" in ui.attr("#dag", "data-states"), "step report SUCCEEDED in the DAG")
    ui.until(lambda: ui.text("#status") == "COMPLETED", "status COMPLETED")
    page.wait_for_selector("#rerun-form:not(.hidden)")
    assert "SUCCEEDED" in page.inner_text("#steps")
    assert "working 15/15" in page.inner_text("#log")
    ui.until(lambda: page.query_selector("#charts .chart canvas") is not None, "the accuracy chart")
    ui.until(lambda: "SUCCEEDED" in ui.text("#cache") and "RUNNING" not in ui.text("#cache"), "the cache table")
    page.wait_for_timeout(300)  # the chart's first frame
    ui.shot("execution")


def test_compare_three_runs(ui: Page, seeded: Seeded) -> None:
    page = ui.page
    for eid in seeded.train_ids:
        page.check(f"#executions input[value='{eid}']")
    page.click("#compare-selected")
    page.wait_for_url("**/ui/compare?**")
    page.wait_for_selector("#compare[data-ready='1']", state="attached")
    rows = page.query_selector_all("#compare-table tbody tr")
    assert len(rows) == 3
    best = page.query_selector_all("#compare-table tbody tr.best")
    assert len(best) == 1 and best[0].get_attribute("data-id") == seeded.train_ids[1]  # lr 0.3: best precision
    headers = page.inner_text("#compare-table thead")
    assert "precision" in headers and "recall" in headers
    for chart in ("#bars", "#scatter", "#parallel"):
        assert page.query_selector(f"{chart} canvas") is not None
    page.wait_for_timeout(300)  # the charts' first frame
    ui.shot("compare")
    page.check("#diff-only")
    page.wait_for_url(re.compile(r"diff=1"))
    page.wait_for_selector("#compare[data-ready='1']", state="attached")
    assert page.query_selector_all("#compare-table th.param:not(.differs)") == []
    loss = page.query_selector("#compare-table thead th.metric").inner_text()
    assert loss.startswith("loss") and "best" in loss
    page.select_option("#show", "max")  # the table's value per metric: best, last, min or max
    page.wait_for_url(re.compile(r"show=max"))
    assert "max" in page.query_selector("#compare-table thead th.metric").inner_text()
    cell = page.query_selector(f"#compare-table tr[data-id='{seeded.train_ids[0]}'] td:nth-last-child(3)")
    assert cell is not None and cell.inner_text() == "1"  # loss starts at 1.0 in every run


def test_stop_a_run(ui: Page, seeded: Seeded) -> None:
    page = ui.page
    # the executions page follows open runs: stopped elsewhere (REST), its row changes without a reload
    other = submit(seeded, seeded.slow_config_long)
    ui.goto("/ui/executions")
    row = f"#executions tr[data-id='{other}']"
    assert ui.attr(row, "data-status") in ("UNKNOWN", "PENDING", "RUNNING")
    ui.until(lambda: ui.attr(row, "data-status") == "RUNNING", "the row to show RUNNING")
    status, _, body = seeded.server.call("PATCH", f"/v2/lm/executions/{other}", {"targetStatus": "STOPPED"})
    assert status == 202, body
    ui.until(lambda: ui.attr(row, "data-status") == "STOPPED", "the row to show STOPPED")
    assert page.url.endswith("/ui/executions")
    # and the stop button of the execution page
    eid = submit(seeded, seeded.slow_config_long)
    ui.goto(f"/ui/executions/{eid}")
    ui.until(lambda: "work=RUNNING" in ui.attr("#dag", "data-states"), "step work RUNNING in the DAG")
    page.click("#stop")
    page.wait_for_url(f"**/ui/executions/{eid}")
    ui.until(lambda: ui.text("#status") == "STOPPED", "status STOPPED")
    page.wait_for_selector("#resume-form:not(.hidden)")
    status, _, body = seeded.server.call("GET", f"/v2/lm/executions/{eid}")
    assert status == 200 and body["status"] == "STOPPED"


def test_move_an_alias(ui: Page, seeded: Seeded) -> None:
    page = ui.page
    ui.goto("/ui/models/ui-model")
    page.fill("#alias-name", "staging")
    page.select_option("#alias-version", "3")
    page.click("#alias-move")
    page.wait_for_url("**/ui/models/ui-model")
    row = page.inner_text("#versions tbody tr:has(a:text('v3'))")
    assert "@staging" in row
    status, _, body = seeded.server.call("GET", "/v2/lm/models/ui-model")
    assert status == 200 and {"alias": "staging", "version": 3} in body["aliases"]
    ui.shot("model")


def test_switch_resource_group(ui: Page, seeded: Seeded) -> None:
    page = ui.page
    assert seeded.train_ids[0] in page.inner_text("#executions")
    page.select_option("#rg-switch", "team-b")
    ui.until(lambda: page.input_value("#rg-switch") == "team-b" and "/ui/executions" in page.url, "team-b selected")
    text = page.inner_text("#executions")
    assert seeded.team_b_id in text and seeded.train_ids[0] not in text
    foreign = f"{seeded.base}/ui/executions/{seeded.train_ids[0]}"
    ui.expected_status.add(foreign)
    resp = page.goto(foreign)
    assert resp is not None and resp.status == 404
    assert "not found" in page.inner_text("#error-message")
    ui.shot("other-group-404")
