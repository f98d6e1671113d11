#!/usr/bin/env python3
"""Step cache and execution semantics: cold vs cached vs ``--no-cache`` runs, and the per-step cost of retries.

Generates chain-1 / chain-50 AI Core WorkflowTemplates (the chain shape of ``bench_runner.py``; each step is
``true <its name>``, so every step has its own cache key), plus the same chains with ``retryStrategy: {limit: 2}``
on every step (never triggered). Every repetition runs, interleaved in a rotated order:

- ``seq50`` / ``seq1``: in ONE fresh ``ORCHESTRATOR_HOME``: cold run (every step executes and fills the cache),
  the same run again (every step must be CACHED — checked in the store), then ``--no-cache`` (every step runs);
- ``plain50`` / ``plain1`` and ``retry50`` / ``retry1``: a fresh home each, ``--no-cache``, without / with
  retries configured, for the marginal per-step overhead ``(wall(chain-50) − wall(chain-1)) / 49``.

    .venv/bin/python bench/bench_cache.py --reps 5

Prints a markdown table and writes everything (raw samples included) to ``bench/results/cache.json``.
See bench/README.md, section "Step cache and execution semantics".
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_runner as br  # noqa: E402  (chain shape, timing, stats and env helpers of bench_runner.py)

N = 50


class BenchError(SystemExit):
    def __init__(self, msg: str) -> None:
        super().__init__(f"bench_cache: FAIL: {msg}")


def template(name: str, n: int, retries: bool) -> str:
    """A chain-n AI Core WorkflowTemplate. Every step passes its own name as a parameter, so every step has its
    own cache key (identical ``true`` steps would share one key, and a cold run would hit the cache from step 2)."""
    lines = ["apiVersion: argoproj.io/v1alpha1", "kind: WorkflowTemplate", "metadata:", f"  name: {name}",
             "  labels:", "    scenarios.ai.sap.com/id: orchestrator-bench", '    ai.sap.com/version: "1.0.0"',
             "  annotations:", '    scenarios.ai.sap.com/name: "orchestrator benchmark"',
             f"    executables.ai.sap.com/name: {json.dumps(name)}", "spec:", "  entrypoint: main", "  templates:",
             "    - name: main", "      dag:", "        tasks:"]
    for task, deps in br.chain(n):  # the chain shape of bench_runner.py: iK depends on i(K-1)
        lines += [f"          - name: {task}", "            template: noop",
                  f"            arguments: {{parameters: [{{name: k, value: {task}}}]}}"]
        if deps:
            lines.append(f"            dependencies: [{', '.join(deps)}]")
    lines += ["    - name: noop", "      inputs: {parameters: [{name: k}]}"]
    if retries:
        lines += ["      retryStrategy:", "        limit: 2"]
    lines += ["      container:", "        image: busybox", '        command: ["true", "{{inputs.parameters.k}}"]', ""]
    return "\n".join(lines)


def generate(workdir: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for n in (1, N):
        for variant in ("plain", "retry"):
            name = f"bench-cache-{variant}-{n}"
            p = workdir / f"{name}.yaml"
            p.write_text(template(name, n, variant == "retry"))
            files[f"{variant}{n}"] = p
    return files


def validate(python: str, files: list[Path], cwd: Path) -> None:
    p = subprocess.run([python, "-m", "orchestrator", "validate", "--json", *map(str, files)], env=br.base_env(),
                       cwd=cwd, capture_output=True, text=True)
    try:
        res = json.loads(p.stdout)
    except ValueError:
        res = None
    if p.returncode != 0 or not res or not res.get("ok") or res.get("errors") or res.get("warnings"):
        raise BenchError(f"generated templates do not validate (rc={p.returncode}):\n{p.stdout}\n{p.stderr}")


def last_execution(home: Path) -> tuple[str, dict[str, int], int]:
    """(status, {leaf state: count}, max attempt over the leaves) of the newest execution in ``home``."""
    db = sqlite3.connect(home / "orchestrator.db")
    try:
        eid, status = db.execute("SELECT id, status FROM executions ORDER BY created_at DESC, rowid DESC "
                                 "LIMIT 1").fetchone()
        states = dict(db.execute("SELECT state, count(*) FROM steps WHERE execution_id=? AND kind='leaf' "
                                 "GROUP BY state", (eid,)).fetchall())
        attempts = db.execute("SELECT max(attempt) FROM steps WHERE execution_id=? AND kind='leaf'",
                              (eid,)).fetchone()[0] or 0
    finally:
        db.close()
    return status, states, attempts


class Bench:
    def __init__(self, python: str, files: dict[str, Path], scratch: Path) -> None:
        self.python, self.files, self.scratch = python, files, scratch
        self._n = 0

    def _home(self) -> Path:
        self._n += 1
        d = self.scratch / f"home-{self._n}"
        d.mkdir()
        return d

    def _run(self, case: str, home: Path, key: str, *extra: str, expect: str, n: int) -> dict:
        env = br.base_env()
        env["ORCHESTRATOR_HOME"] = str(home)
        cmd = [self.python, "-m", "orchestrator", "run", str(self.files[key]), "-q", "-j", "1", *extra]
        wall, p, cpu = br.timed(cmd, env, home)
        if p.returncode != 0:
            raise BenchError(f"{case}: {cmd!r} exited {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        status, states, attempts = last_execution(home)
        if status != "COMPLETED" or states != {expect: n}:
            raise BenchError(f"{case}: expected COMPLETED with {n} {expect} steps, got {status} {states}")
        if expect == "SUCCEEDED" and attempts != 1:
            raise BenchError(f"{case}: a step ran {attempts} attempts (retries must never trigger here)")
        return {"wall": wall, "cpu": cpu}

    def sequence(self, n: int) -> dict[str, dict]:
        """cold -> cached -> --no-cache in one fresh home."""
        home = self._home()
        key = f"plain{n}"
        out = {
            "cold": self._run(f"cold{n}", home, key, expect="SUCCEEDED", n=n),
            "cached": self._run(f"cached{n}", home, key, expect="CACHED", n=n),
            "nocache": self._run(f"nocache{n}", home, key, "--no-cache", expect="SUCCEEDED", n=n),
        }
        shutil.rmtree(home, ignore_errors=True)
        return out

    def single(self, key: str, n: int) -> dict:
        home = self._home()
        s = self._run(key, home, key, "--no-cache", expect="SUCCEEDED", n=n)
        shutil.rmtree(home, ignore_errors=True)
        return s


def groups(b: Bench) -> dict:
    return {
        "seq50": lambda: b.sequence(N),
        "seq1": lambda: b.sequence(1),
        "plain50": lambda: {"run": b.single(f"plain{N}", N)},
        "plain1": lambda: {"run": b.single("plain1", 1)},
        "retry50": lambda: {"run": b.single(f"retry{N}", N)},
        "retry1": lambda: {"run": b.single("retry1", 1)},
    }


# --------------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------------

def _marginal(big: list[float], small: list[float]) -> dict:
    head = (statistics.median(big) - statistics.median(small)) / (N - 1)
    paired = [(y - x) / (N - 1) for x, y in zip(small, big)]
    return {"ms_per_step": round(head * 1e3, 3),
            "paired_ms": {"min": round(min(paired) * 1e3, 3), "max": round(max(paired) * 1e3, 3)}}


def summarise(samples: dict[str, list[float]]) -> dict:
    w = {k: br.stat(v) for k, v in samples.items()}
    ratio_per_rep = [c / k for c, k in zip(samples["cached50"], samples["cold50"])]
    m = {
        "cold": _marginal(samples["cold50"], samples["cold1"]),
        "cached": _marginal(samples["cached50"], samples["cached1"]),
        "nocache_existing_home": _marginal(samples["nocache50"], samples["nocache1"]),
        "no_retries": _marginal(samples["plain50"], samples["plain1"]),
        "retries_limit2": _marginal(samples["retry50"], samples["retry1"]),
    }
    extra = [((r50 - r1) - (p50 - p1)) / (N - 1) for r50, r1, p50, p1 in
             zip(samples["retry50"], samples["retry1"], samples["plain50"], samples["plain1"])]
    return {
        "walls_s": w,
        "cached_over_cold": {"ratio_of_medians": round(w["cached50"]["median"] / w["cold50"]["median"], 3),
                             "per_rep": br.stat(ratio_per_rep, 3)},
        "cache_fill_cost_s": round(w["cold50"]["median"] - w["plain50"]["median"], 4),
        "marginal_per_step": m,
        "retry_overhead_ms_per_step": {
            "median_diff": round(m["retries_limit2"]["ms_per_step"] - m["no_retries"]["ms_per_step"], 3),
            "paired_ms": br.stat([x * 1e3 for x in extra], 3),
        },
    }


def markdown(s: dict, meta: dict) -> str:
    w, m = s["walls_s"], s["marginal_per_step"]

    def mg(x: dict) -> str:
        return f"{x['ms_per_step']:.3f} ms ({x['paired_ms']['min']:.3f}–{x['paired_ms']['max']:.3f})"

    r = s["cached_over_cold"]
    ro = s["retry_overhead_ms_per_step"]
    rows = [
        (f"chain-{N} cold (fresh home, cache on: {N} SUCCEEDED, cache filled)", br.fmt(w["cold50"]), ""),
        (f"chain-{N} cached (same home: {N}/{N} CACHED, checked in `steps.state`)", br.fmt(w["cached50"]), ""),
        (f"chain-{N} `--no-cache` (same home: {N} SUCCEEDED)", br.fmt(w["nocache50"]), ""),
        (f"chain-{N} `--no-cache`, fresh home (like cold, without cache work)", br.fmt(w["plain50"]),
         f"cache keys + fill ≈ {s['cache_fill_cost_s'] * 1e3:.0f} ms per chain-{N}"),
        ("**ratio cached / cold**", f"{r['ratio_of_medians']:.2f}× "
         f"({r['per_rep']['min']:.2f}–{r['per_rep']['max']:.2f} per rep)", "lower is better"),
        (f"marginal per step, cold (chain-{N} − chain-1, ÷{N - 1})", mg(m["cold"]), ""),
        ("marginal per step, cached (a cache hit)", mg(m["cached"]), ""),
        ("marginal per step, `--no-cache` (existing home)", mg(m["nocache_existing_home"]), ""),
        ("marginal per step, no retries (fresh home, `--no-cache`)", mg(m["no_retries"]), ""),
        ("marginal per step, `retryStrategy: {limit: 2}` on every step (never triggered)",
         mg(m["retries_limit2"]), ""),
        ("**retry overhead per step** (with − without)", f"{ro['median_diff']:+.3f} ms "
         f"(paired {ro['paired_ms']['min']:+.3f}–{ro['paired_ms']['max']:+.3f})", "≈ 0 expected"),
        ("chain-1 cold / cached / `--no-cache` wall",
         f"{w['cold1']['median']:.3f} / {w['cached1']['median']:.3f} / {w['nocache1']['median']:.3f} s", ""),
    ]
    head = (f"reps={meta['reps']} (median, min–max) · -j 1 · python {meta['python_version']} · "
            f"sqlite {meta['sqlite_version']} · git {meta['git']} · load {meta['loadavg_before']} → "
            f"{meta['loadavg_after']} · {meta['elapsed_s']:.0f} s total")
    lines = [head, "", "| measure | value | note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="repetitions of every case (default 5)")
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs orchestrator (default: this one)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "cache.json")
    ap.add_argument("--no-warmup", action="store_true", help="skip the discarded warm-up round")
    ap.add_argument("--inherit-bytecode-env", action="store_true",
                    help="pass PYTHONDONTWRITEBYTECODE/PYTHONPYCACHEPREFIX through unchanged (see bench_runner.py)")
    a = ap.parse_args(argv)
    python = os.path.abspath(a.python)  # not resolved: a venv's python is a symlink out of the venv
    if not os.path.exists(python):
        raise BenchError(f"--python {python} does not exist")
    if a.reps < 1:
        raise BenchError("--reps must be >= 1")

    t_start = time.perf_counter()
    la0 = br.loadavg()
    samples: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="orch-bench-cache-") as tmp:
        tmp_p = Path(tmp)
        br.PYCACHE = None if a.inherit_bytecode_env else str(tmp_p / "pycache")
        files = generate(tmp_p)
        validate(python, list(files.values()), tmp_p)
        scratch = tmp_p / "scratch"
        scratch.mkdir()
        gs = groups(Bench(python, files, scratch))
        names = list(gs)
        if not a.no_warmup:
            for n in names:
                gs[n]()
        for rep in range(a.reps):
            k = rep % len(names)
            for n in names[k:] + names[:k]:
                for phase, s in gs[n]().items():
                    key = {"seq50": f"{phase}{N}", "seq1": f"{phase}1"}.get(n, n)
                    samples.setdefault(key, []).append(s["wall"])
                    cpu.setdefault(key, []).append(s["cpu"])
            print(f"rep {rep + 1}/{a.reps} done ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr)
        br.PYCACHE = None

    pyv = subprocess.run([python, "-c", "import sys, sqlite3; print(sys.version.split()[0], sqlite3.sqlite_version)"],
                         capture_output=True, text=True).stdout.split()
    meta = {
        "reps": a.reps, "python": python, "python_version": pyv[0] if pyv else None,
        "sqlite_version": pyv[1] if len(pyv) > 1 else None, "git": br.git_rev(), "host": platform.node(),
        "cpus": os.cpu_count(), "loadavg_before": la0, "loadavg_after": br.loadavg(),
        "elapsed_s": round(time.perf_counter() - t_start, 1), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "notes": [
            "every run: [python, -m, orchestrator, run, FILE, -q, -j, 1 (, --no-cache)], wall around subprocess.run",
            "cold/cached/nocache: one fresh ORCHESTRATOR_HOME per sequence; cold includes store creation",
            "plain*/retry*: a fresh home per run, --no-cache; retry* = retryStrategy {limit: 2} on every step",
            "after every run the newest execution is checked in the store: COMPLETED, all N leaves SUCCEEDED "
            "(attempt 1) or, for the cached run, all N CACHED",
            "marginal = (median chain-50 - median chain-1)/49; ranges over per-rep paired values",
        ],
    }
    summary = summarise(samples)
    summary["cpu_s"] = {k: br.stat(v) for k, v in cpu.items()}
    table = markdown(summary, meta)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"meta": meta, "summary": summary, "samples_wall_s": samples, "samples_cpu_s": cpu,
                                 "table_md": table}, indent=2) + "\n")
    print(table)
    print(f"\nsaved {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
