"""Git sync timing: a repository of N valid templates (plus a Configuration and an ExecutionSchedule),
synced cold (first clone + validate + register), with no change (fetch + same commit), forced
(fetch + re-validate + nothing to write), and after one file changed.

Usage: python bench/bench_sync.py [--templates 50] [--reps 5]

Each case runs in this process through ``Service.sync`` (what ``orchestrator sync APP`` does,
minus interpreter start-up); the "cold" case uses a fresh home each repetition so it includes the
bare clone. Prints the median and min of each case in seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.control.service import Service  # noqa: E402

ENV = {"PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
       "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.org", "GIT_COMMITTER_NAME": "b",
       "GIT_COMMITTER_EMAIL": "b@example.org", "HOME": "/nonexistent"}


def template(i: int, variant: str = "") -> str:
    return f"""apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: bench-{i}
  annotations:
    scenarios.ai.sap.com/name: bench
    executables.ai.sap.com/name: bench-{i}
  labels:
    scenarios.ai.sap.com/id: bench
    ai.sap.com/version: "1.0"
spec:
  entrypoint: main
  arguments:
    parameters:
      - name: slot
        default: none
  templates:
    - name: main
      dag:
        tasks:
          - {{name: prep, template: step}}
          - {{name: train, template: step, dependencies: [prep]}}
          - {{name: score, template: step, dependencies: [train]}}
    - name: step
      container:
        image: python:3.11
        command: [python3, -c, "pass{variant}"]
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True)


def build(root: Path, n: int) -> Path:
    repo = root / "repo"
    (repo / "workflows").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for i in range(n):
        (repo / "workflows" / f"t{i:03d}.yaml").write_text(template(i))
    (repo / "workflows" / "schedule.yaml").write_text(
        "apiVersion: orchestrator/v1\nkind: Configuration\nmetadata:\n  name: nightly-cfg\nspec:\n"
        "  executableId: bench-0\n---\napiVersion: orchestrator/v1\nkind: ExecutionSchedule\nmetadata:\n"
        "  name: nightly\nspec:\n  cron: \"0 2 * * *\"\n  timezone: Europe/Berlin\n"
        "  configurationName: nightly-cfg\n  slotParameter: slot\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench")
    return repo


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--templates", type=int, default=50)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    times: dict[str, list[float]] = {"cold": [], "no-change": [], "forced": [], "one-file-changed": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = build(root, args.templates)
        for rep in range(args.reps):
            svc = Service(root / f"home{rep}", reap=False)
            svc.add_repository("bench", str(repo))
            svc.add_application("bench", repository="bench", path="workflows", revision="main")
            t = time.perf_counter()
            (r,) = svc.sync("bench")
            times["cold"].append(time.perf_counter() - t)
            assert r.status == "SYNCED" and len(r.registered) == args.templates, r.message
            t = time.perf_counter()
            (r,) = svc.sync("bench")
            times["no-change"].append(time.perf_counter() - t)
            assert r.status == "UNCHANGED"
            t = time.perf_counter()
            (r,) = svc.sync("bench", force=True)
            times["forced"].append(time.perf_counter() - t)
            (repo / "workflows" / "t000.yaml").write_text(template(0, f"  # {rep}"))
            git(repo, "commit", "-q", "-am", f"change {rep}")
            t = time.perf_counter()
            (r,) = svc.sync("bench")
            times["one-file-changed"].append(time.perf_counter() - t)
            assert r.status == "SYNCED"
            svc.close()
    print(f"{args.templates} templates + 1 Configuration + 1 ExecutionSchedule, {args.reps} reps")
    print("| case | median s | min s |\n|---|---|---|")
    for case, vals in times.items():
        print(f"| {case} | {statistics.median(vals):.3f} | {min(vals):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
