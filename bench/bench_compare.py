#!/usr/bin/env python3
"""Compare over 1,000 executions: ``orchestrator compare --scenario S --json`` (CLI wall, interpreter
start included) and ``GET /v2/lm/compare?scenarioId=S`` (a real server on 127.0.0.1).

Seeds a fresh home directly through the store (fast): one registered template with 10
parameters and goals for its 10 metrics (``orchestrator/metrics``), then ``--executions``
configurations and COMPLETED executions, each with its own 10 parameter values and 10 metrics of
``--points`` points (logged through ``add_metrics``, so the summary rows are maintained as at
ingest). Then times ``--reps`` CLI runs and ``--reps`` REST calls (after one warm-up each) and
prints the medians against the target (0.3 s). Every answer is checked (count, best row).

    .venv/bin/python bench/bench_compare.py --executions 1000 --points 20 --reps 7 [--mlflow-exe V/bin/mlflow]

With ``--mlflow-exe`` (the ``mlflow`` command of a full mlflow install, e.g. a separate venv) the
peer runs in the same process: the same runs (10 params, 10 metrics x ``--points`` points each)
logged into ``mlflow server`` with a SQLite backend, then ``MlflowClient().search_runs`` of all of
them, in-process and warm, against our REST call (also in-process and warm); the ratio is printed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET = 0.3
SCENARIO = "bench-compare"
PARAMS = [f"p{i}" for i in range(10)]
METRICS = [f"m{i}" for i in range(10)]


def template() -> str:
    params = "".join(f"      - name: {p}\n        value: \"0\"\n" for p in PARAMS)
    goals = ",".join(f"{m}:{'max' if i % 2 else 'min'}" for i, m in enumerate(METRICS))
    return f"""apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: bench-train
  labels:
    scenarios.ai.sap.com/id: {SCENARIO}
    ai.sap.com/version: "1.0"
  annotations:
    scenarios.ai.sap.com/name: bench
    executables.ai.sap.com/name: bench-train
    orchestrator/metrics: "{goals}"
spec:
  entrypoint: main
  arguments:
    parameters:
{params}  templates:
    - name: main
      container: {{image: x, command: ["true"]}}
"""


def seed(home: Path, executions: int, points: int) -> float:
    """Write the home; returns seconds taken."""
    sys.path.insert(0, str(REPO))
    from orchestrator.model import MetricPoint
    from orchestrator.spec import validate_text
    from orchestrator.store import now_iso
    from orchestrator.store.sqlite import SqliteStore

    t0 = time.perf_counter()
    home.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(str(home / "orchestrator.db"))
    text = template()
    res = validate_text(text.encode(), "bench-train.yaml")
    assert not res.errors, res.errors
    rnd = random.Random(7)
    with store.transaction() as db:
        store.register_executable("default", res.workflows[0], {"text": text, "index": 0, "file": "bench-train.yaml"})
        for n in range(executions):
            params = [(p, str(rnd.randint(0, 3) if i else n)) for i, p in enumerate(PARAMS)]
            cfg = store.create_configuration("default", f"run-{n}", SCENARIO, "bench-train", params, [])
            ex = store.create_execution("default", cfg, str(home / "executions"))
            store.add_metrics("default", ex.id, "", [MetricPoint(ex.id, m, rnd.random(), now_iso(), s, ())
                                                     for s in range(points) for m in METRICS])
            db.execute("UPDATE executions SET status='COMPLETED', start_time=created_at, completion_time=? "
                       "WHERE id=?", (now_iso(), ex.id))
    store.close()
    return time.perf_counter() - t0


def check(result: dict, executions: int) -> None:
    assert result["count"] == executions, result["count"]
    assert result["bestExecutionId"] and len(result["parameters"]) == 10 and len(result["metrics"]) == 10


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def time_cli(cmd: list[str], home: Path, reps: int, executions: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system of the child: what other sessions on the machine do not inflate)."""
    env = {**os.environ, "ORCHESTRATOR_HOME": str(home), "ORCHESTRATOR_SERVER": ""}
    argv = [*cmd, "compare", "--scenario", SCENARIO, "--json"]
    walls, cpus = [], []
    for i in range(reps + 1):
        c0, t0 = _child_cpu(), time.perf_counter()
        p = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        wall, cpu = time.perf_counter() - t0, _child_cpu() - c0
        if p.returncode != 0:
            raise SystemExit(f"compare failed ({p.returncode}): {p.stderr}")
        check(json.loads(p.stdout), executions)
        if i:  # the first run warms the page cache
            walls.append(wall)
            cpus.append(cpu)
    return walls, cpus


def time_rest(home: Path, reps: int, executions: int) -> list[float]:
    env = {**os.environ, "ORCHESTRATOR_HOME": str(home)}
    log = open(home / "server.log", "w+")  # noqa: SIM115 - the server writes it while we poll
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "serve", "--port", "0"], env=env, cwd=home,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        base = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not base:
            log.seek(0)
            m = re.search(r"listening on (http://\S+)", log.read())
            base = m.group(1) if m else ""
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        if not base:
            log.seek(0)
            raise SystemExit("server did not start:\n" + log.read())
        token = (home / "admin-token").read_text().strip()
        req = urllib.request.Request(f"{base}/v2/lm/compare?scenarioId={SCENARIO}",
                                     headers={"Authorization": f"Bearer {token}", "AI-Resource-Group": "default"})
        out = []
        for i in range(reps + 1):
            t0 = time.perf_counter()
            with urllib.request.urlopen(req, timeout=60) as resp:
                body = resp.read()
            wall = time.perf_counter() - t0
            result = json.loads(body)
            result["executions"] = result["resources"]
            check(result, executions)
            if i:
                out.append(wall)
        return out
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


PEER = """\
import json, statistics, sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
runs, points, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = MlflowClient()
exp = c.create_experiment("bench-compare")
now = int(time.time() * 1000)
t0 = time.perf_counter()
for i in range(runs):
    run = c.create_run(exp).info.run_id
    c.log_batch(run, params=[Param(f"p{k}", str((i * 7 + k) % 13)) for k in range(10)],
                metrics=[Metric(f"m{k}", ((i + k + j) % 97) / 97, now, j) for k in range(10) for j in range(points)])
seeded = time.perf_counter() - t0
walls = []
for r in range(reps + 1):
    t = time.perf_counter()
    got = c.search_runs([exp], max_results=runs)
    wall = time.perf_counter() - t
    assert len(got) == runs and len(got[0].data.metrics) == 10 and len(got[0].data.params) == 10, len(got)
    if r:
        walls.append(wall)
print("PEER " + json.dumps({"seeded": seeded, "walls": walls}))
"""


def time_mlflow(tmp: Path, exe: str, reps: int, executions: int, points: int) -> list[float]:
    """``MlflowClient().search_runs`` over the same runs in ``mlflow server`` (SQLite): in-process walls."""
    sys.path.insert(0, str(HERE))
    from bench_mlflow import serve_mlflow

    (tmp / "peer.py").write_text(PEER)
    with serve_mlflow(tmp, exe) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_TRACKING_URI"] = url
        res = subprocess.run([sys.executable, str(tmp / "peer.py"), str(executions), str(points), str(reps)],
                             env=env, cwd=tmp, capture_output=True, text=True, check=False)
    line = next((x for x in res.stdout.splitlines() if x.startswith("PEER ")), None)
    if res.returncode != 0 or line is None:
        raise SystemExit(f"mlflow peer failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    got = json.loads(line[5:])
    print(f"mlflow: seeded {executions} runs in {got['seeded']:.1f} s")
    return list(got["walls"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executions", type=int, default=1000)
    ap.add_argument("--points", type=int, default=20, help="points per metric and execution")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--cmd", default=str(Path(sys.executable).parent / "orchestrator"),
                    help="the orchestrator command (default: the one next to this Python)")
    ap.add_argument("--no-rest", action="store_true", help="time the CLI only")
    ap.add_argument("--mlflow-exe", help="also time search_runs against `mlflow server` (this full mlflow's command)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    try:
        home = tmp / "home"
        took = seed(home, args.executions, args.points)
        print(f"seeded {args.executions} executions x {len(PARAMS)} parameters x {len(METRICS)} metrics "
              f"x {args.points} points in {took:.1f} s")
        cli, cli_cpu = time_cli(args.cmd.split(), home, args.reps, args.executions)
        figures = {"cli": cli}
        if not args.no_rest:
            figures["rest"] = time_rest(home, args.reps, args.executions)
        if args.mlflow_exe:
            figures["mlflow search_runs"] = time_mlflow(tmp, args.mlflow_exe, args.reps, args.executions, args.points)
        for name, walls in figures.items():
            med = statistics.median(walls)
            print(f"{name:5} median {med:.3f} s  min {min(walls):.3f}  max {max(walls):.3f}  "
                  f"({len(walls)} reps; target <= {TARGET} s: {'ok' if med <= TARGET else 'MISSED'})")
        if "rest" in figures and "mlflow search_runs" in figures:
            ratio = statistics.median(figures["mlflow search_runs"]) / statistics.median(figures["rest"])
            print(f"ratio: mlflow search_runs / our REST compare (medians) = {ratio:.1f}x")
        print(f"cli   CPU (user+sys of the process) median {statistics.median(cli_cpu):.3f} s; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "compare.json").write_text(json.dumps(
            {"executions": args.executions, "points": args.points, "target": TARGET,
             "cliCpu": {"median": statistics.median(cli_cpu), "samples": cli_cpu}, "load": os.getloadavg()[0],
             **{k: {"median": statistics.median(v), "walls": v} for k, v in figures.items()}}, indent=2))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
