#!/usr/bin/env python3
"""Container executor vs host executor: per-step overhead on a chain, and time to first step.

Runs the same N-step chain (``steps:`` of ``sh -c true``, one after the other) with
``--executor local`` and ``--executor podman`` (a busybox-static image imported once, no
registry), interleaved per repetition, and reports per executor: the wall of the whole run, the
per-step marginal ((wall(chain-N) - wall(chain-1)) / (N - 1)), the time to first step (from the
start of ``orchestrator run`` to the end of the first (no-op) step as the store records it), and the ratio
container / host.

    .venv/bin/python bench/bench_container.py --steps 20 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def chain(n: int, image: str) -> str:
    steps = "\n".join(f"    - - name: s{i}\n        template: t" for i in range(n))
    return f"""apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: bench-chain-{n}
  annotations:
    scenarios.ai.sap.com/name: bench
    executables.ai.sap.com/name: bench-chain-{n}
  labels:
    scenarios.ai.sap.com/id: bench-scenario
    ai.sap.com/version: "1.0"
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
{steps}
  - name: t
    container:
      image: {image}
      command: [sh, -c, "true"]
"""


def one(python: str, wf: Path, home: Path, executor: str) -> tuple[float, float]:
    """(wall seconds, seconds from the command's start to the end of the first step)."""
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "ORCHESTRATOR_HOME": str(home), "ORCHESTRATOR_EXECUTOR": executor}
    t0 = time.time()
    p = subprocess.run([python, "-m", "orchestrator", "run", "-q", "--no-cache", str(wf)], env=env,
                       capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        raise SystemExit(f"{executor} run failed: {p.stderr[-500:]}")
    db = next(home.rglob("*.db"))
    with sqlite3.connect(db) as c:
        first = c.execute("SELECT MIN(finished_at) FROM steps WHERE kind='leaf'").fetchone()[0]
    return wall, (float(first) - t0) if first else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()
    from tests.integration import container_images as images

    with tempfile.TemporaryDirectory(prefix="bench-container-") as tmp:
        t = Path(tmp)
        image = images.busybox_image(t)
        files = {n: t / f"chain-{n}.yaml" for n in (1, a.steps)}
        for n, f in files.items():
            f.write_text(chain(n, image))
        res: dict[str, dict[int, list[tuple[float, float]]]] = {"local": {1: [], a.steps: []},
                                                                 "podman": {1: [], a.steps: []}}
        for ex in res:  # warm-up
            one(a.python, files[1], t / "home", ex)
        for _ in range(a.reps):
            for ex in res:
                for n in files:
                    res[ex][n].append(one(a.python, files[n], t / "home", ex))
    out: dict[str, dict[str, float]] = {}
    for ex, by_n in res.items():
        w1 = statistics.median(w for w, _ in by_n[1])
        wn = statistics.median(w for w, _ in by_n[a.steps])
        out[ex] = {"wall_chain_1_s": round(w1, 3), f"wall_chain_{a.steps}_s": round(wn, 3),
                   "per_step_s": round((wn - w1) / (a.steps - 1), 4),
                   "first_step_done_s": round(statistics.median(f for _, f in by_n[1] + by_n[a.steps]), 3)}
    host = out["local"]["per_step_s"]  # a few ms: under load it can drown in the noise (<= 0)
    out["ratio"] = {"per_step_container_over_host": round(out["podman"]["per_step_s"] / host, 1) if host > 0 else None,
                    "per_step_container_minus_host_s": round(out["podman"]["per_step_s"] - max(host, 0.0), 4),
                    "first_step_container_minus_host_s": round(out["podman"]["first_step_done_s"]
                                                               - out["local"]["first_step_done_s"], 3)}
    print(json.dumps({"steps": a.steps, "reps": a.reps, **out}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
