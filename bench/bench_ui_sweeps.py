#!/usr/bin/env python3
"""Dashboard sweep pages with a big sweep: 10,000 trials (Optuna Dashboard's pain point).

Seeds a fresh home (one real run of a tiny template for its configuration, then a sweep of
``--trials`` trial executions with two parameters and an objective each, written through the
store in one transaction; every tenth trial STOPPED by a policy message), starts ``orchestrator
serve`` on 127.0.0.1, logs in through the login form, and measures, interleaved over ``--reps``
rounds:

* **server time** (the dashboard's ``Server-Timing: app;dur=``) of the sweeps list, the sweep page
  (its first page of 200 trials) and the chart data (every trial, column-wise);
* **the peer, same run**: the client wall time of the REST API's
  ``GET /v2/lm/sweeps/{id}/trials?$top=200`` next to the sweep page's own client wall time;
* **in headless Chromium** (Debian's ``/usr/bin/chromium`` via Playwright): from navigation start
  until both charts (objective per trial with best so far, parallel coordinates over every scored
  trial) have been given their data and drawn a frame.

Prints a table and writes ``bench/results/ui_sweeps.json``.

    .venv/bin/python bench/bench_ui_sweeps.py --reps 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_ui import ARGS, TRAIN, Http, server_ms  # noqa: E402

POLICY = ("early termination (bandit, slack_factor 0.2) at interval 1: best 0.1 so far is below 0.4, the allowed "
          "slack from the best trial (0.48, maximize)")


def seed(home: Path, trials: int) -> str:
    from orchestrator.control import tokens
    from orchestrator.control.service import Service
    from orchestrator.spec.sweep import Distribution, Objective, SweepSpec, TrialTarget
    from orchestrator.spec.sweep_kind import to_document
    from orchestrator.store.sweep_records import SweepRecords

    svc = Service(home, reap=False, local_files=True)
    path = home.parent / "train.yaml"
    path.write_text(TRAIN)
    plan = svc.plan(str(path), ["lr=0.1"], [])
    ex = svc.create(plan)
    svc.execute(ex, plan)
    cfg = svc.store.get_configuration(svc.rg, ex.configuration_id)
    spec = SweepSpec("big", TrialTarget("bench-train"), (("lr", Distribution("uniform", min_value=0, max_value=1)),),
                     Objective("loss", "minimize"))
    records = SweepRecords(svc.store)
    row = records.create(svc.rg, "big", to_document(spec), 1, cfg.id)
    rnd = random.Random(7)
    t = time.perf_counter()
    with svc.store.transaction() as db:
        for i in range(trials):
            eid = svc.store.create_execution(svc.rg, cfg, str(home / "executions")).id
            stopped = i % 10 == 9
            db.execute("UPDATE executions SET status=?, status_message=? WHERE id=?",
                       ("STOPPED" if stopped else "COMPLETED", POLICY if stopped else "", eid))
            lr, depth = rnd.random(), rnd.randint(2, 12)
            db.execute("""INSERT INTO sweep_trials(sweep_id, trial, execution_id, parameters, started_at, finished_at,
                          reports, objective, message) VALUES (?,?,?,?,?,?,?,?,?)""",
                       (row.id, i, eid, json.dumps({"lr": f"{lr:.4f}", "depth": str(depth)}), 1000.0 + i,
                        1001.5 + i, json.dumps([0.5] * 5), round((lr - 0.3) ** 2 + depth / 100 + rnd.random() / 50, 5),
                        ""))
    records.finish(svc.rg, row.id, "COMPLETED", "seeded by bench_ui_sweeps")
    print(f"seeded a sweep of {trials} trials in {time.perf_counter() - t:.1f} s", flush=True)
    tokens.ensure_admin_file(svc.store, home)
    svc.close()
    return row.id


def browser_times(base: str, cookie: str, sweep_id: str, reps: int) -> float:
    from playwright.sync_api import sync_playwright

    name, value = cookie.split("=", 1)
    ready = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        # bypass_csp: the benchmark reads performance.now() with page.evaluate (eval is what the CSP forbids)
        ctx = b.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
        ctx.add_cookies([{"name": name, "value": value, "url": base + "/ui"}])
        page = ctx.new_page()
        for i in range(reps + 1):
            page.goto(base + f"/ui/sweeps/{sweep_id}", wait_until="load")
            page.wait_for_selector("#sweep[data-ready='1']", state="attached", timeout=60_000)
            at = page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(performance.now())))")
            if i:  # the first round is a warm-up
                ready.append(at)
        b.close()
    return round(statistics.median(ready), 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "ui_sweeps.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-sweeps-"))
    home = tmp / "home"
    sweep_id = seed(home, args.trials)
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
        ui, rest = Http(base), Http(base)
        ui.login(token)
        auth = {"Authorization": f"Bearer {token}", "AI-Resource-Group": "default"}
        paths = {"list": "/ui/sweeps", "page": f"/ui/sweeps/{sweep_id}", "chart": f"/ui/sweeps/{sweep_id}/chart.json"}
        samples: dict[str, list[float]] = {k: [] for k in (*paths, "page_wall", "rest_wall")}
        sizes: dict[str, int] = {}
        for _ in range(2):  # warm-up
            ui.get(paths["page"])
            rest.get(f"/v2/lm/sweeps/{sweep_id}/trials?$top=200", auth)
        for _ in range(args.reps):
            for key, path in paths.items():
                status, h, body, wall = ui.get(path)
                assert status == 200, (path, status)
                samples[key].append(server_ms(h))
                sizes[key] = len(body)
                if key == "page":
                    samples["page_wall"].append(wall * 1000)
            status, _, body, wall = rest.get(f"/v2/lm/sweeps/{sweep_id}/trials?$top=200", auth)
            assert status == 200 and json.loads(body)["count"] == args.trials
            samples["rest_wall"].append(wall * 1000)
        med = {k: round(statistics.median(v), 1) for k, v in samples.items()}
        med["charts_drawn"] = browser_times(base, ui.cookie, sweep_id, args.reps)
    finally:
        proc.terminate()
        proc.wait(15)
    result = {"trials": args.trials, "reps": args.reps, "ms": med, "bytes": sizes,
              "page_vs_rest": round(med["page_wall"] / med["rest_wall"], 2)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"| sweep of {args.trials} trials | median ms |\n|---|---|\n"
          f"| sweeps list, server | {med['list']} |\n| sweep page (200 trials), server | {med['page']} |\n"
          f"| chart data (every trial), server | {med['chart']} ({sizes['chart']} bytes) |\n"
          f"| sweep page client wall / REST trials $top=200 (peer) | {med['page_wall']} / {med['rest_wall']} "
          f"(x{result['page_vs_rest']}) |\n| Chromium: navigation start to both charts drawn | {med['charts_drawn']} |")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
