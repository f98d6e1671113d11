#!/usr/bin/env python3
"""The fixed costs of ``orchestrator sweep FILE`` as a whole process, next to Optuna's process.

The same trial process, template and Sweep as ``bench_sweep.py`` (imported from it), run as
fresh processes, interleaved, round 0 discarded:

- ``optuna``: ``python -c <bench_sweep's Optuna ask/tell loop>`` (whole wall and CPU), and its
  start-up alone: ``import optuna`` + ``create_study`` in a fresh process;
- ``cli``: ``orchestrator sweep TEMPLATE SWEEP -q --json`` with a fresh ``ORCHESTRATOR_HOME``:
  whole wall, CPU (the process and its trials), start -> the first trial process's recorded start,
  the last trial process's recorded end -> the process has exited (from the store's step attempts);
- ``baseline`` (with ``--baseline DIR``): the same CLI with ``PYTHONPATH=DIR``, an export of an
  older commit (``git archive C | tar -x -C DIR``), for before/after in one run. Every process
  runs in the bench's temporary folder: ``python -m`` puts the working directory first on
  ``sys.path``, so in a checkout it would import that checkout's package whatever PYTHONPATH says.

Bytecode: each tree's ``orchestrator`` package is compiled first (``compileall``): an installed
wheel has its ``.pyc`` files, and with ``PYTHONDONTWRITEBYTECODE=1`` in the environment a source
tree would otherwise be compiled by every process (~0.5 s of a CLI run, none of Optuna's).

    flock /work/wt/bench.lock .venv/bin/python bench/bench_cli_startup.py --reps 5 [--trials 100] [--baseline DIR]
"""
from __future__ import annotations

import argparse
import compileall
import copy
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_sweep as bs  # noqa: E402 - the trial, template, Sweep and Optuna loop of the sweep bench

OPTUNA_START = ("import optuna; optuna.logging.set_verbosity(optuna.logging.WARNING); "
                "optuna.create_study(direction='maximize', sampler=optuna.samplers.RandomSampler(seed=1))")


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def optuna_process(python: str, trials: int) -> dict[str, float]:
    c0, t0 = _child_cpu(), time.perf_counter()
    subprocess.run([python, "-c", bs.OPTUNA_LOOP, python, bs.CODE, str(trials), str(bs.CONCURRENCY)], check=True,
                   capture_output=True)
    wall, cpu = time.perf_counter() - t0, _child_cpu() - c0
    t0 = time.perf_counter()
    subprocess.run([python, "-c", OPTUNA_START], check=True, capture_output=True)
    return {"wall": wall, "cpu": cpu, "start": time.perf_counter() - t0}


def cli(python: str, home: Path, template: Path, sweep: Path, tree: str | None) -> dict[str, float]:
    env = {**os.environ, "ORCHESTRATOR_HOME": str(home)}
    if tree:
        env["PYTHONPATH"] = tree
    c0, e0, t0 = _child_cpu(), time.time(), time.perf_counter()
    # cwd: not a checkout, whose orchestrator/ would come before PYTHONPATH for ``python -m``
    subprocess.run([python, "-m", "orchestrator", "sweep", str(template), str(sweep), "-q", "--json"], check=True,
                   capture_output=True, env=env, cwd=home.parent)
    wall, cpu, e1 = time.perf_counter() - t0, _child_cpu() - c0, time.time()
    db = sqlite3.connect(home / "orchestrator.db")
    first, last = db.execute("SELECT min(started_at), max(finished_at) FROM step_attempts").fetchone()
    db.close()
    return {"wall": wall, "cpu": cpu, "start": first - e0, "end": e1 - last}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--trials", type=int, default=bs.TRIALS)
    ap.add_argument("--baseline", metavar="DIR", help="an export of an older tree, run with PYTHONPATH=DIR")
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    if args.trials <= bs.CONCURRENCY:
        ap.error(f"--trials must be above {bs.CONCURRENCY} (the Optuna loop reports a slot gap)")
    for tree in [bs.REPO] + ([Path(args.baseline)] if args.baseline else []):
        compileall.compile_dir(str(tree / "orchestrator"), quiet=1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    template = tmp / "noop.yaml"
    template.write_text(bs.TEMPLATE.format(python=json.dumps(args.python), code=json.dumps(bs.CODE)))
    spec = copy.deepcopy(bs.SWEEP)
    spec["spec"]["limits"]["maxTotalTrials"] = args.trials
    sweep = tmp / "sweep.yaml"
    sweep.write_text(json.dumps(spec))
    cases = ["optuna", "cli"] + (["baseline"] if args.baseline else [])
    samples: dict[str, dict[str, list[float]]] = {c: {} for c in cases}
    load = [os.getloadavg()[0]]
    for rep in range(args.reps + 1):  # round 0 warms the page cache and is discarded
        order = cases[rep % len(cases):] + cases[:rep % len(cases)]
        for case in order:
            if case == "optuna":
                got = optuna_process(args.python, args.trials)
            else:
                got = cli(args.python, tmp / f"home-{case}-{rep}", template, sweep,
                          args.baseline if case == "baseline" else None)
            if rep:
                for k, v in got.items():
                    samples[case].setdefault(k, []).append(v)
    load.append(os.getloadavg()[0])
    med = {c: {k: statistics.median(v) for k, v in s.items()} for c, s in samples.items()}
    summary = {"trials": args.trials, "reps": args.reps, "load_average_1min": load, "median_s": med,
               "ratio_cli_vs_optuna_process": med["cli"]["wall"] / med["optuna"]["wall"], "samples": samples}
    if args.baseline:
        summary["ratio_baseline_vs_optuna_process"] = med["baseline"]["wall"] / med["optuna"]["wall"]
    print(json.dumps(summary, indent=2))
    print(f"\n{args.trials} trials, {args.reps} rounds, load average {load[0]:.1f} -> {load[1]:.1f}; medians, ms\n")
    print("| process | whole wall | CPU (with its trials) | start -> first trial | last trial -> exit |")
    print("|---|---|---|---|---|")
    o = med["optuna"]
    print(f"| Optuna loop | {o['wall'] * 1000:.0f} | {o['cpu'] * 1000:.0f} | (import + study alone: "
          f"{o['start'] * 1000:.0f}) | |")
    for case in cases[1:]:
        m = med[case]
        name = "`orchestrator sweep`" + (f" ({args.baseline})" if case == "baseline" else "")
        print(f"| {name} | {m['wall'] * 1000:.0f} | {m['cpu'] * 1000:.0f} | {m['start'] * 1000:.0f} | "
              f"{m['end'] * 1000:.0f} |")
    print(f"\nCLI / Optuna process: {summary['ratio_cli_vs_optuna_process']:.2f}x"
          + (f"   baseline / Optuna process: {summary['ratio_baseline_vs_optuna_process']:.2f}x" if args.baseline
             else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
