#!/usr/bin/env python3
"""Lifecycle hooks at scale: a loop of N items, each with a hook, vs the same loop without hooks.

Each hook is re-evaluated only when a node its expression reads changes (run.lifecycle), so the
hooked loop should cost a small constant factor over the plain one, not grow with N squared.
Both cases run interleaved in this one process tree; the figure is the ratio hooked / plain.

    .venv/bin/python bench/bench_hooks.py --items 1200 --reps 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOOK = ('        hooks:\n          h:\n            expression: steps["a"].status == "Failed" && '
        'steps["a"].status == "Failed"\n            template: noop\n')


def workflow(n: int, hooked: bool) -> str:
    return ("apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata:\n  name: bench-hooks\n"
            "  annotations:\n    scenarios.ai.sap.com/name: bench\n    executables.ai.sap.com/name: bench-hooks\n"
            "  labels:\n    scenarios.ai.sap.com/id: bench\n    ai.sap.com/version: '1.0'\n"
            "spec:\n  entrypoint: main\n  templates:\n  - name: main\n    steps:\n"
            f"    - - name: a\n        template: noop\n        withSequence: {{count: \"{n}\"}}\n"
            + (HOOK if hooked else "")
            + "  - name: noop\n    container: {image: busybox, command: [sh, -c, 'exit 0']}\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1200)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    exe = str(Path(sys.executable).parent / "orchestrator")
    walls: dict[str, list[float]] = {"plain": [], "hooked": []}
    with tempfile.TemporaryDirectory() as tmp:
        for case in walls:
            Path(tmp, f"{case}.yaml").write_text(workflow(args.items, case == "hooked"))
        for rep in range(args.reps):
            for case in walls:
                env = {**os.environ, "ORCHESTRATOR_HOME": str(Path(tmp, f"home-{case}-{rep}"))}
                t0 = time.perf_counter()
                subprocess.run([exe, "run", str(Path(tmp, f"{case}.yaml"))], env=env, check=True,
                               capture_output=True)
                walls[case].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in walls.items()}
    print(json.dumps({"items": args.items, "reps": args.reps, "median_wall_s": med,
                      "ratio_hooked_over_plain": med["hooked"] / med["plain"]}, indent=2))


if __name__ == "__main__":
    main()
