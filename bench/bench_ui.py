#!/usr/bin/env python3
"""Dashboard benchmark with real volumes: 10,000 executions and a 100,000-point metric series.

Seeds a fresh home (one real run of a tiny training template, then 9,999 more executions of its
configuration written through the store in one transaction, statuses spread over COMPLETED, DEAD
and STOPPED, and 100,000 points of ``loss`` on the real run), starts ``orchestrator serve`` on
127.0.0.1, logs in through the login form, and measures, interleaved over ``--reps`` rounds:

* **executions page, server time**: the ``Server-Timing: app;dur=`` the dashboard's gate reports
  for ``GET /ui/executions`` (first page, 50 rows, of 10,000), unfiltered and filtered
  (status + search), and, as the **peer measured in the same run**, the client wall time of the
  REST API's ``GET /v2/lm/executions?$top=50`` next to the page's own client wall time (ratio
  page/REST);
* **time to usable in headless Chromium** (Debian's ``/usr/bin/chromium`` via Playwright): the
  navigation's ``domContentLoadedEventEnd`` (the page's scripts are ``defer``: they have run and
  wired the filters by then), and ``loadEventEnd``;
* **compare 100 runs**: the compare page over 100 runs with parameters and three metrics, from
  navigation start until its charts are drawn, and one brush (a drag) on a parallel-coordinates
  axis until the next frame (interactive means a frame in well under 100 ms);
* **chart render**: the execution page of the run with the 100,000-point series, from navigation
  start to ECharts' ``finished`` event of every chart (server-side LTTB to 1,000 points), and the
  bytes of that series JSON versus the raw CSV download (the peer: what the browser would get
  without downsampling), with the server time of each.

Targets (issue 17): executions page ≤ 100 ms server time, usable ≤ 1 s, chart ≤ 1 s. Prints a
table and writes ``bench/results/ui.json``.

    .venv/bin/python bench/bench_ui.py --reps 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TRAIN = """apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: bench-train
  labels:
    scenarios.ai.sap.com/id: bench
    ai.sap.com/version: "1.0"
  annotations:
    scenarios.ai.sap.com/name: bench
    executables.ai.sap.com/name: bench-train
    orchestrator/metrics: "loss:min"
spec:
  entrypoint: main
  arguments:
    parameters:
      - name: lr
        value: "0.1"
  templates:
    - name: main
      inputs:
        parameters:
          - name: lr
      container:
        image: python:3.11-slim
        command: [python3, -c, "print('trained')"]
"""
COMPARED = 100
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def seed(home: Path, executions: int, points: int) -> tuple[str, list[str]]:
    from orchestrator.control import tokens
    from orchestrator.control.service import Service
    from orchestrator.model import MetricPoint

    svc = Service(home, reap=False, local_files=True)
    path = home.parent / "train.yaml"
    path.write_text(TRAIN)
    plan = svc.plan(str(path), ["lr=0.1"], [])
    ex = svc.create(plan)
    svc.execute(ex, plan)
    cfg = svc.store.get_configuration(svc.rg, ex.configuration_id)
    t = time.perf_counter()
    with svc.store.transaction() as db:
        for _ in range(executions - 1):
            svc.store.create_execution(svc.rg, cfg, str(home / "executions"))
        db.execute("""UPDATE executions SET status=CASE abs(random()) % 10 WHEN 0 THEN 'DEAD' WHEN 1 THEN 'STOPPED'
                      ELSE 'COMPLETED' END, start_time=created_at, completion_time=created_at,
                      status_message='seeded by bench_ui' WHERE rg=? AND id<>?""", (svc.rg, ex.id))
    compared = [r["id"] for r in svc.store.run_query(svc.store.query_executions(svc.rg), "id", limit=COMPARED)]
    for k, other in enumerate(compared):  # 100 runs with parameters and metrics to compare
        svc.store.add_metrics(svc.rg, other, "bench", [
            MetricPoint(other, name, value, "2026-01-01T00:00:00Z", 1) for name, value in
            (("precision", 0.5 + (k * 37 % 100) / 250), ("recall", 0.9 - (k * 53 % 100) / 300),
             ("f1", 0.6 + (k * 11 % 100) / 400))], [], [])
    svc.store.add_metrics(svc.rg, ex.id, "bench", [
        MetricPoint(ex.id, "loss", 1.0 / (1 + i / 1000) + (i % 97) / 5000, "2026-01-01T00:00:00Z", i)
        for i in range(points)], [], [])
    print(f"seeded {executions} executions and a {points}-point series in {time.perf_counter() - t:.1f} s",
          flush=True)
    tokens.ensure_admin_file(svc.store, home)
    svc.close()
    return ex.id, compared


class Http:
    def __init__(self, base: str) -> None:
        host, port = base.rsplit("//", 1)[1].rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.cookie = ""

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes, float]:
        hdrs = dict(headers or {})
        if self.cookie:
            hdrs["Cookie"] = self.cookie
        t = time.perf_counter()
        self.conn.request("GET", path, headers=hdrs)
        resp = self.conn.getresponse()
        body = resp.read()
        wall = time.perf_counter() - t
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body, wall

    def login(self, token: str) -> None:
        _, h, body, _ = self.get("/ui/login")
        pre = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()  # type: ignore[union-attr]
        login_cookie = h["set-cookie"].split(";", 1)[0]
        data = urllib.parse.urlencode({"csrf": pre, "token": token, "next": "/ui/executions"})
        self.conn.request("POST", "/ui/login", body=data, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": login_cookie})
        resp = self.conn.getresponse()
        resp.read()
        assert resp.status == 303, resp.status
        self.cookie = next(c for c in resp.headers.get_all("set-cookie") or [] if c.startswith("orch_ui=")
                           ).split(";", 1)[0]


def server_ms(headers: dict[str, str]) -> float:
    return float(re.search(r"dur=([\d.]+)", headers["server-timing"]).group(1))  # type: ignore[union-attr]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--executions", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "ui.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    home = tmp / "home"
    eid, compared = seed(home, args.executions, args.points)
    env = {**os.environ, "ORCHESTRATOR_HOME": str(home)}
    log = open(tmp / "server.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "serve", "--port", "0", "--schedule-interval", "0",
                             "--sync-interval", "0"], cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = ""
        for _ in range(600):
            log.seek(0)
            m = re.search(r"listening on (http://\S+)", log.read())
            if m:
                base = m.group(1)
                break
            time.sleep(0.05)
        assert base, "server did not start"
        token = (home / "admin-token").read_text().strip()
        ui = Http(base)
        ui.login(token)
        rest = Http(base)
        auth = {"Authorization": f"Bearer {token}", "AI-Resource-Group": "default"}
        pages = {"unfiltered": "/ui/executions", "filtered": "/ui/executions?status=COMPLETED&q=bench"}
        samples: dict[str, list[float]] = {k: [] for k in ("unfiltered", "filtered", "page_wall", "rest_wall",
                                                           "series_server", "csv_server")}
        sizes: dict[str, int] = {}
        for _ in range(2):  # warm-up
            ui.get(pages["unfiltered"])
            rest.get("/v2/lm/executions?$top=50", auth)
        for _ in range(args.reps * 4):
            for key, path in pages.items():
                status, h, body, wall = ui.get(path)
                assert status == 200 and b"executions" in body, status
                samples[key].append(server_ms(h))
                if key == "unfiltered":
                    samples["page_wall"].append(wall * 1000)
            status, _, body, wall = rest.get("/v2/lm/executions?$top=50", auth)
            assert status == 200 and json.loads(body)["count"] == args.executions
            samples["rest_wall"].append(wall * 1000)
        for _ in range(args.reps):
            status, h, body, _ = ui.get(f"/ui/executions/{eid}/series.json")
            assert status == 200
            samples["series_server"].append(server_ms(h))
            sizes["series_json_bytes"] = len(body)
            status, h, body, _ = ui.get(f"/ui/executions/{eid}/metrics.csv")
            assert status == 200
            samples["csv_server"].append(server_ms(h))
            sizes["raw_csv_bytes"] = len(body)
        browser = browser_times(base, ui.cookie, eid, compared, args.reps)
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
    med = {k: round(statistics.median(v), 2) for k, v in samples.items()}
    result = {"executions": args.executions, "points": args.points, "reps": args.reps, "median_ms": med,
              "browser_ms": browser, "sizes": sizes,
              "ratio_page_over_rest_wall": round(med["page_wall"] / med["rest_wall"], 2),
              "targets": {"executions_page_server_ms": 100, "usable_ms": 1000, "chart_ms": 1000}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"\n| measure | median | target |\n|---|---|---|\n"
          f"| executions page, server time (10k rows, page 1) | {med['unfiltered']} ms | ≤ 100 ms |\n"
          f"| executions page, server time, status+search filter | {med['filtered']} ms | ≤ 100 ms |\n"
          f"| page wall / REST list wall (same 50 rows) | {result['ratio_page_over_rest_wall']} | — |\n"
          f"| usable in Chromium (domContentLoaded) | {browser['usable']} ms | ≤ 1000 ms |\n"
          f"| chart of {args.points} points rendered (from navigation start) | {browser['chart']} ms | ≤ 1000 ms |\n"
          f"| compare page of {COMPARED} runs ready (table + 3 charts, from navigation start) | "
          f"{browser['compare_100_ready']} ms | — |\n"
          f"| brush on a parallel-coordinates axis over {COMPARED} runs, to the next frame | "
          f"{browser['parallel_brush']} ms | — |\n"
          f"| series JSON / raw CSV bytes | {sizes['series_json_bytes']} / {sizes['raw_csv_bytes']} | — |")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def browser_times(base: str, cookie: str, eid: str, compared: list[str], reps: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    name, value = cookie.split("=", 1)
    usable, loaded, chart, compare, brush = [], [], [], [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        # bypass_csp: the benchmark reads performance entries with page.evaluate (eval is what the CSP forbids)
        ctx = b.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
        ctx.add_cookies([{"name": name, "value": value, "url": base + "/ui"}])
        page = ctx.new_page()
        for i in range(reps + 1):
            page.goto(base + "/ui/executions", wait_until="load")
            nav = page.evaluate("() => performance.getEntriesByType('navigation')[0].toJSON()")
            page.goto(base + f"/ui/executions/{eid}", wait_until="load")
            page.wait_for_selector("body[data-charts-at]", state="attached", timeout=30_000)
            at = float(page.get_attribute("body", "data-charts-at") or 0)
            page.goto(base + "/ui/compare?" + "&".join(f"ids={c}" for c in compared), wait_until="load")
            page.wait_for_selector("#compare[data-ready='1']", state="attached", timeout=30_000)
            ready = page.evaluate("() => performance.now()")
            # one brush on the first parallel axis (drag over the upper half), until the next frame is drawn
            box = page.query_selector("#parallel").bounding_box()
            t = time.perf_counter()
            page.mouse.move(box["x"] + 60, box["y"] + 60)
            page.mouse.down()
            page.mouse.move(box["x"] + 60, box["y"] + box["height"] / 2, steps=5)
            page.mouse.up()
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
            took = (time.perf_counter() - t) * 1000
            if i:  # the first round is a warm-up (browser caches, server caches)
                usable.append(nav["domContentLoadedEventEnd"])
                loaded.append(nav["loadEventEnd"])
                chart.append(at)
                compare.append(ready)
                brush.append(took)
        b.close()
    return {"usable": round(statistics.median(usable), 1), "loaded": round(statistics.median(loaded), 1),
            "chart": round(statistics.median(chart), 1), "compare_100_ready": round(statistics.median(compare), 1),
            "parallel_brush": round(statistics.median(brush), 1)}


if __name__ == "__main__":
    sys.exit(main())
