"""MLflow logging throughput from a step through the runner's loopback endpoint (issue 14 item 5).

    .venv/bin/python bench/bench_mlflow.py [--reps 3] [--single 1000] [--batch 10000]

One ``orchestrator run`` per rep of a one-step template whose script uses the real ``mlflow``
client: ``mlflow.log_metric`` N times (one request each), then ``MlflowClient().log_batch`` of M
points (the client splits it into requests of 1000). Prints points/s per rep and the median, and
checks that every point landed (``orchestrator metrics --json``). With ``--mlflow-server`` (needs
the full ``mlflow`` package: ``mlflow server`` with a SQLite backend) the same script runs against
it, side by side. Reference (issue 14, MLflow 3.18 server on this machine): 355 points/s single,
13k points/s batch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """\
import json, os, sys, time
import mlflow
from mlflow.entities import Metric
single, batch = int(sys.argv[1]), int(sys.argv[2])
if not os.environ.get("MLFLOW_RUN_ID"):
    mlflow.set_experiment("bench")
with mlflow.start_run() as run:
    t = time.perf_counter()
    for i in range(single):
        mlflow.log_metric("single", float(i), step=i)
    t1 = time.perf_counter()
    now = int(time.time() * 1000)
    points = [Metric("batch", float(i), now, i) for i in range(batch)]
    t2 = time.perf_counter()
    mlflow.MlflowClient().log_batch(run.info.run_id, metrics=points)
    t3 = time.perf_counter()
print("BENCH " + json.dumps({"single_s": t1 - t, "batch_s": t3 - t2, "run_id": run.info.run_id}))
"""

TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: bench-mlflow
  labels:
    scenarios.ai.sap.com/id: bench-mlflow
    ai.sap.com/version: "1.0.0"
  annotations:
    scenarios.ai.sap.com/name: "mlflow benchmark"
    executables.ai.sap.com/name: "bench-mlflow"
spec:
  entrypoint: main
  templates:
    - name: main
      container:
        image: python:3.11-slim
        command: [python3, {script}, "{single}", "{batch}"]
"""


def _result(text: str) -> dict[str, float]:
    line = next(x for x in text.splitlines() if x.startswith("BENCH "))
    return json.loads(line[6:])


def ours(tmp: Path, single: int, batch: int) -> dict[str, float]:
    env = dict(os.environ, ORCHESTRATOR_HOME=str(tmp / "home"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    run = [sys.executable, "-m", "orchestrator"]
    res = subprocess.run([*run, "run", "--no-cache", "--json", str(tmp / "bench.yaml")], env=env,
                         capture_output=True, text=True, check=False)
    ex = json.loads(res.stdout)
    if res.returncode != 0:
        raise SystemExit(f"bench run failed: {ex.get('statusMessage')}")
    logs = subprocess.run([*run, "logs", ex["id"]], env=env, capture_output=True, text=True, check=True).stdout
    got = json.loads(subprocess.run([*run, "metrics", ex["id"], "--json"], env=env, capture_output=True,
                                    text=True, check=True).stdout)
    counts = {n: sum(1 for m in got["metrics"] if m["name"] == n) for n in ("single", "batch")}
    if counts != {"single": single, "batch": batch}:
        raise SystemExit(f"points lost or duplicated: {counts}")
    return _result(logs)


@contextlib.contextmanager
def serve_mlflow(tmp: Path, exe: str) -> Iterator[str]:
    """``mlflow server`` with a fresh SQLite backend on 127.0.0.1; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp / f"mlflow-{time.time_ns()}.db"
    proc = subprocess.Popen([exe, "server", "--host", "127.0.0.1", "--port", str(port), "--backend-store-uri",
                             f"sqlite:///{db}", "--default-artifact-root", str(tmp / "mlartifacts")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def mlflow_server(tmp: Path, script: Path, single: int, batch: int, exe: str) -> dict[str, float]:
    with serve_mlflow(tmp, exe) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_TRACKING_URI"] = url
        res = subprocess.run([sys.executable, str(script), str(single), str(batch)], env=env, cwd=tmp,
                             capture_output=True, text=True, check=True)
        return _result(res.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--single", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--mlflow-server", action="store_true", help="also run against `mlflow server` (SQLite)")
    ap.add_argument("--mlflow-exe", default=shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow")),
                    help="the `mlflow` command of a full mlflow install (may be another venv's)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as d:
        tmp = Path(d)
        script = tmp / "log.py"
        script.write_text(SCRIPT)
        (tmp / "bench.yaml").write_text(TEMPLATE.format(script=script, single=args.single, batch=args.batch))
        sides = {"orchestrator endpoint": lambda: ours(tmp, args.single, args.batch)}
        if args.mlflow_server:
            sides["mlflow server (sqlite)"] = lambda: mlflow_server(tmp, script, args.single, args.batch, args.mlflow_exe)
        rows: dict[str, list[dict[str, float]]] = {k: [] for k in sides}
        for rep in range(args.reps):
            for name, fn in sides.items():  # interleaved: both sides see the same machine load
                rows[name].append(fn())
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
        print(f"| side | mlflow.log_metric x{args.single} (points/s) | log_batch of {args.batch} (points/s) |")
        print("|---|---|---|")
        medians: dict[str, tuple[float, float]] = {}
        for name, rs in rows.items():
            single = [args.single / r["single_s"] for r in rs]
            batch = [args.batch / r["batch_s"] for r in rs]
            medians[name] = (statistics.median(single), statistics.median(batch))
            print(f"| {name} | {medians[name][0]:,.0f} ({min(single):,.0f}–{max(single):,.0f}) | "
                  f"{medians[name][1]:,.0f} ({min(batch):,.0f}–{max(batch):,.0f}) |")
        if len(medians) == 2:
            (a1, a2), (b1, b2) = medians.values()
            print(f"| ratio (orchestrator / mlflow server, medians) | {a1 / b1:.1f}x | {a2 / b2:.1f}x |")


if __name__ == "__main__":
    main()
