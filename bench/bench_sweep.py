#!/usr/bin/env python3
"""Side-by-side benchmark: our sweep engine vs Optuna's ask/tell loop, the same trial process.

100 trials of one no-op trial process (a Python that logs one metric through
``orchestrator.tracking``), at most 2 running at once, three ways in one run, interleaved:

- ``floor``: a bare loop that starts the trial process 100 times on 2 threads (no bookkeeping);
- ``optuna``: ``study.ask()`` / ``study.tell()`` (in-memory study, RandomSampler) around the same
  process on 2 threads, the value read back from the tracking file the process wrote;
- ``sweep``: :func:`orchestrator.control.sweeps.run_sweep` of a ``Sweep`` with
  ``maxTotalTrials: 100, maxConcurrentTrials: 2`` over a one-step template running the same
  process (every trial a stored execution, store ``synchronous=FULL``).

Also the whole CLI (``orchestrator sweep FILE`` in a fresh process) vs a fresh Python process
running the Optuna loop, each including its own start-up. Reported: walls (median of ``--reps``),
bookkeeping per trial beyond the process = (wall - floor wall) x 2 / 100, the CPU the engine's
own process spends per trial (steadier than wall on a loaded box), the slot gap (median time from
one trial process's end to the start of the next one in its slot: what the bookkeeping adds to a
trial, measured directly; the floor's own gap is its loop), and the ratio sweep / optuna. Targets:
bookkeeping <= 5 ms per trial, whole wall <= 1.1 x Optuna's loop.

    .venv/bin/python bench/bench_sweep.py --reps 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TRIALS, CONCURRENCY = 100, 2
CODE = "import sys; from orchestrator import tracking as t; t.log_metric('score', float(sys.argv[1]))"
TEMPLATE = """apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: bench-noop
  annotations: {{scenarios.ai.sap.com/name: bench, executables.ai.sap.com/name: bench-noop}}
  labels: {{scenarios.ai.sap.com/id: bench, ai.sap.com/version: "1"}}
spec:
  entrypoint: main
  arguments:
    parameters: [{{name: x}}]
  templates:
  - name: main
    container:
      image: python
      command: [{python}, -c, {code}, "{{{{workflow.parameters.x}}}}"]
"""
SWEEP = {"apiVersion": "orchestrator/v1", "kind": "Sweep", "metadata": {"name": "bench"},
         "spec": {"trial": {"executableId": "bench-noop"},
                  "searchSpace": {"x": {"type": "uniform", "min_value": 0, "max_value": 1}},
                  "samplingAlgorithm": {"type": "random", "seed": 1},
                  "objective": {"primaryMetric": "score", "goal": "maximize"},
                  "limits": {"maxTotalTrials": TRIALS, "maxConcurrentTrials": CONCURRENCY}}}
OPTUNA_LOOP = r"""
import json, os, subprocess, sys, tempfile, threading, time
t0 = time.perf_counter()
c0 = time.process_time()
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
python, code, trials, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
lock = threading.Lock()
tmp = tempfile.mkdtemp()
left = [trials]

gaps = []

def worker(w):
    last = None
    while True:
        t = time.perf_counter()
        with lock:
            if left[0] == 0:
                return
            left[0] -= 1
            trial = study.ask()
            x = trial.suggest_float("x", 0, 1)
        path = os.path.join(tmp, f"{trial.number}.jsonl")
        env = {**os.environ, "ORCHESTRATOR_TRACKING_FILE": path}
        start = time.perf_counter()
        if last is not None:
            gaps.append(start - last)
        subprocess.run([python, "-c", code, repr(x)], env=env, check=True, stdin=subprocess.DEVNULL)
        last = time.perf_counter()
        with open(path) as f:
            value = json.loads(f.readline())["value"]
        with lock:
            study.tell(trial, value)

threads = [threading.Thread(target=worker, args=(i,)) for i in range(conc)]
[t.start() for t in threads]
[t.join() for t in threads]
assert len(study.trials) == trials and study.best_value is not None
gaps.sort()
print(json.dumps({"loop": time.perf_counter() - t0, "cpu": time.process_time() - c0, "gap": gaps[len(gaps) // 2]}))
"""


def floor(python: str, tmp: Path) -> tuple[float, float]:
    """(wall, median gap: from one process's end to the next one's start on the same thread)."""
    left = [TRIALS]
    lock = threading.Lock()
    gaps: list[float] = []

    def worker() -> None:
        last = None
        while True:
            with lock:
                if not left[0]:
                    return
                left[0] -= 1
                n = left[0]
            path = tmp / f"floor-{n}.jsonl"
            env = {**os.environ, "ORCHESTRATOR_TRACKING_FILE": str(path)}
            start = time.perf_counter()
            if last is not None:
                gaps.append(start - last)
            subprocess.run([python, "-c", CODE, "0.5"], env=env, check=True, stdin=subprocess.DEVNULL)
            last = time.perf_counter()
            path.read_text()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, statistics.median(gaps)


def optuna_loop(python: str) -> tuple[float, float, float, float]:
    """(in-loop wall, whole process wall incl. start-up and import, the loop's own CPU seconds,
    median gap between a process's end and the next start on the same thread)."""
    t0 = time.perf_counter()
    out = subprocess.run([python, "-c", OPTUNA_LOOP, python, CODE, str(TRIALS), str(CONCURRENCY)], check=True,
                         capture_output=True, text=True)
    whole = time.perf_counter() - t0
    got = json.loads(out.stdout)
    return float(got["loop"]), whole, float(got["cpu"]), float(got["gap"])


def sweep_inproc(home: Path, template: Path, sweep: Path) -> tuple[float, float, float, float]:
    """(wall, this process's CPU seconds: the engine and every trial's runner thread, no child;
    the engine's own CPU: its loop on this thread: sampling, policy, the sweep's store writes;
    the median gap from a trial process's end to the start of the next trial's process, from the
    recorded step attempts: at 2 running at once the k-th start follows the (k-2)-th end)."""
    from orchestrator.control import sweep_admin, sweeps
    from orchestrator.control.service import Service
    from orchestrator.spec import validate_paths

    svc = Service(home, local_files=True)
    svc.register([str(template)])
    spec = validate_paths([str(sweep)]).sweeps[0]
    t0, c0, e0 = time.perf_counter(), time.process_time(), time.thread_time()
    row = sweeps.run_sweep(svc, spec)
    wall, cpu, engine = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - e0
    assert row.status == "COMPLETED", row.status_message
    trials = sweep_admin.sweep_json(svc, row.id)["trials"]
    assert len(trials) == TRIALS and all(t["status"] == "COMPLETED" and t["objective"] is not None for t in trials)
    spans = svc.store.db.execute("SELECT started_at, finished_at FROM step_attempts").fetchall()
    starts, ends = sorted(s for s, _ in spans), sorted(e for _, e in spans)
    gap = statistics.median(starts[k] - ends[k - CONCURRENCY] for k in range(CONCURRENCY, len(starts)))
    svc.close()
    return wall, cpu, engine, gap


def sweep_cli(python: str, home: Path, template: Path, sweep: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([python, "-m", "orchestrator", "sweep", str(template), str(sweep), "-q", "--json"], check=True,
                   capture_output=True, env={**os.environ, "ORCHESTRATOR_HOME": str(home)})
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    template = tmp / "noop.yaml"
    template.write_text(TEMPLATE.format(python=json.dumps(args.python), code=json.dumps(CODE)))
    sweep = tmp / "sweep.yaml"
    sweep.write_text(json.dumps(SWEEP))
    samples: dict[str, list[float]] = {"floor": [], "floor_gap": [], "optuna": [], "optuna_process": [],
                                       "optuna_cpu": [], "optuna_gap": [], "sweep": [], "sweep_cpu": [],
                                       "sweep_engine_cpu": [], "sweep_gap": [], "sweep_cli": []}
    for rep in range(args.reps + 1):  # round 0 warms caches (bytecode, page cache) and is discarded
        cases = ["floor", "optuna", "sweep", "sweep_cli"]
        cases = cases[rep % 4:] + cases[:rep % 4]
        got: dict[str, float] = {}
        for case in cases:
            if case == "floor":
                got["floor"], got["floor_gap"] = floor(args.python, tmp)
            elif case == "optuna":
                got["optuna"], got["optuna_process"], got["optuna_cpu"], got["optuna_gap"] = optuna_loop(args.python)
            elif case == "sweep":
                got["sweep"], got["sweep_cpu"], got["sweep_engine_cpu"], got["sweep_gap"] = sweep_inproc(
                    tmp / f"home-{rep}", template, sweep)
            else:
                got["sweep_cli"] = sweep_cli(args.python, tmp / f"home-cli-{rep}", template, sweep)
        if rep:
            for k, v in got.items():
                samples[k].append(v)
    med = {k: statistics.median(v) for k, v in samples.items()}
    per_trial = {k: (med[k] - med["floor"]) * CONCURRENCY / TRIALS * 1000 for k in ("optuna", "sweep")}
    gap = {k: (med[f"{k}_gap"] - med["floor_gap"]) * 1000 for k in ("optuna", "sweep")}
    summary = {
        "trials": TRIALS, "concurrency": CONCURRENCY, "reps": args.reps, "median_wall_s": med,
        "bookkeeping_ms_per_trial": per_trial,
        "gap_beyond_floor_ms_per_trial": gap,
        "gap_ms": {k: med[f"{k}_gap"] * 1000 for k in ("floor", "optuna", "sweep")},
        "own_cpu_ms_per_trial": {"optuna": med["optuna_cpu"] / TRIALS * 1000, "sweep": med["sweep_cpu"] / TRIALS * 1000,
                                 "sweep_engine_only": med["sweep_engine_cpu"] / TRIALS * 1000},
        "ratio_sweep_vs_optuna_loop": med["sweep"] / med["optuna"],
        # the same round's sweep / Optuna (they ran minutes apart at most): steadier on a box whose load drifts
        "ratio_paired_per_round": sorted(s / o for s, o in zip(samples["sweep"], samples["optuna"])),
        "ratio_cli_vs_optuna_process": med["sweep_cli"] / med["optuna_process"],
        "targets": {"bookkeeping_ms_per_trial_max": 5.0, "ratio_max": 1.1},
        "samples": samples,
    }
    print(json.dumps(summary, indent=2))
    cpu = summary["own_cpu_ms_per_trial"]
    g = summary["gap_ms"]
    print("\n| case | median wall (s) | wall beyond the process, ms/trial | slot gap, ms/trial (beyond the floor's) "
          "| own CPU, ms/trial |\n|---|---|---|---|---|")
    print(f"| floor: the process alone, 2 threads | {med['floor']:.2f} | 0 | {g['floor']:.1f} | |")
    print(f"| Optuna ask/tell loop (in-loop) | {med['optuna']:.2f} | {per_trial['optuna']:.1f} | "
          f"{g['optuna']:.1f} ({gap['optuna']:.1f}) | {cpu['optuna']:.1f} |")
    print(f"| orchestrator sweep engine (in-process) | {med['sweep']:.2f} | {per_trial['sweep']:.1f} | "
          f"{g['sweep']:.1f} ({gap['sweep']:.1f}) | {cpu['sweep']:.1f} (engine loop alone: {cpu['sweep_engine_only']:.1f}) |")
    print(f"| Optuna loop, whole process | {med['optuna_process']:.2f} | | | |")
    print(f"| `orchestrator sweep` CLI, whole process | {med['sweep_cli']:.2f} | | | |")
    paired = summary["ratio_paired_per_round"]
    print(f"\nsweep / optuna loop: {summary['ratio_sweep_vs_optuna_loop']:.2f}x "
          f"(paired per round: median {statistics.median(paired):.2f}x, {min(paired):.2f}-{max(paired):.2f})   "
          f"CLI / optuna process: {summary['ratio_cli_vs_optuna_process']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
