#!/usr/bin/env python3
"""Side-by-side benchmark: ``orchestrator run`` vs the FLOOR runner (``minimal_runner.py``).

Generates the workloads into a temp dir (AI Core WorkflowTemplates for the orchestrator, the
floor's own ``steps:`` format for the floor), validates the templates once, then runs every case
interleaved (one of each per repetition, in a rotated order) in this one process tree and prints
a JSON summary plus a markdown table. Results also go to ``bench/results/latest.json``.

    .venv/bin/python bench/bench_runner.py --reps 7

See bench/README.md for what each figure means and the targets.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_FLOOR = REPO.parent / "shared" / "bench" / "minimal_runner.py"

CHAIN_N = 50
FAN_WIDTH = 100
FAN_TASKS = FAN_WIDTH + 2

TARGETS = {
    "marginal_ratio_max": 1.3,     # orchestrator marginal / floor marginal (chain, -j 1)
    "version_startup_max_s": 0.15,  # `orchestrator --version` wall
}


# --------------------------------------------------------------------------------------------
# workload generation
# --------------------------------------------------------------------------------------------

def _q(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def ai_core_template(name: str, tasks: list[tuple[str, list[str]]]) -> str:
    """An AI Core WorkflowTemplate whose entrypoint is a ``dag:`` of no-op container tasks."""
    lines = [
        "apiVersion: argoproj.io/v1alpha1",
        "kind: WorkflowTemplate",
        "metadata:",
        f"  name: {name}",
        "  labels:",
        "    scenarios.ai.sap.com/id: orchestrator-bench",
        '    ai.sap.com/version: "1.0.0"',
        "  annotations:",
        '    scenarios.ai.sap.com/name: "orchestrator benchmark"',
        f"    executables.ai.sap.com/name: {_q(name)}",
        "spec:",
        "  entrypoint: main",
        "  templates:",
        "    - name: main",
        "      dag:",
        "        tasks:",
    ]
    for task, deps in tasks:
        lines.append(f"          - name: {task}")
        lines.append("            template: noop")
        if deps:
            lines.append(f"            dependencies: [{', '.join(deps)}]")
    lines += [
        "    - name: noop",
        "      container:",
        "        image: busybox",
        '        command: ["true"]',
        "",
    ]
    return "\n".join(lines)


def floor_workflow(name: str, tasks: list[tuple[str, list[str]]]) -> str:
    """The same shape in the floor's own format (its name must start with chain/fan)."""
    lines = [f"name: {name}", "steps:"]
    for task, deps in tasks:
        lines.append(f"  - id: {task}")
        lines.append('    command: "true"')
        if deps:
            lines.append(f"    depends_on: [{', '.join(deps)}]")
    lines.append("")
    return "\n".join(lines)


def chain(n: int) -> list[tuple[str, list[str]]]:
    return [(f"i{k}", [f"i{k - 1}"] if k else []) for k in range(n)]


def fan(width: int) -> list[tuple[str, list[str]]]:
    mids = [f"m{k}" for k in range(width)]
    return [("src", [])] + [(m, ["src"]) for m in mids] + [("sink", mids)]


def generate(workdir: Path, long_n: int = 0) -> dict[str, Path]:
    shapes = {"chain1": chain(1), "chain50": chain(CHAIN_N), "fan100": fan(FAN_WIDTH)}
    orch_names = {"chain1": "bench-chain-1", "chain50": "bench-chain-50", "fan100": "bench-fan-100"}
    if long_n:
        shapes["chainL"] = chain(long_n)
        orch_names["chainL"] = f"bench-chain-{long_n}"
    files: dict[str, Path] = {}
    (workdir / "orch").mkdir()
    (workdir / "floor").mkdir()
    for key, tasks in shapes.items():
        p = workdir / "orch" / f"{orch_names[key]}.yaml"
        p.write_text(ai_core_template(orch_names[key], tasks))
        files[f"orch:{key}"] = p
        q = workdir / "floor" / f"{key}.yaml"
        q.write_text(floor_workflow(key.replace("chainL", f"chain{long_n}"), tasks))  # chain1, chain50, fan100
        files[f"floor:{key}"] = q
    return files


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------

class BenchError(SystemExit):
    def __init__(self, msg: str) -> None:
        super().__init__(f"bench_runner: FAIL: {msg}")


PYCACHE: str | None = None  # set by main(): where children cache bytecode (None = inherit the env as is)


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ORCHESTRATOR_SYNC", None)  # default store = synchronous=FULL
    env.pop("ORCHESTRATOR_HOME", None)
    if PYCACHE:
        # Like a normal install, where the second run finds .pyc files: without this, an inherited
        # PYTHONDONTWRITEBYTECODE=1 makes every run recompile the project's modules from source.
        # The cache lives in the temp dir, so nothing is written into the source tree.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = PYCACHE
    return env


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess, float]:
    """Wall of one child process, and the CPU (user+sys) it and every descendant it reaped used."""
    c0 = _cpu()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    return wall, p, _cpu() - c0


def check_rc(case: str, cmd: list[str], p: subprocess.CompletedProcess) -> None:
    if p.returncode != 0:
        raise BenchError(f"{case}: {cmd!r} exited {p.returncode}\nstdout: {p.stdout[-2000:]}\n"
                         f"stderr: {p.stderr[-2000:]}")


def check_orch_store(case: str, home: Path, tasks: int) -> None:
    """After the (timed) run: the execution COMPLETED and every leaf step SUCCEEDED."""
    db = sqlite3.connect(home / "orchestrator.db")
    try:
        status = [r[0] for r in db.execute("SELECT status FROM executions")]
        ok = db.execute("SELECT count(*) FROM steps WHERE kind='leaf' AND state='SUCCEEDED'").fetchone()[0]
    finally:
        db.close()
    if status != ["COMPLETED"] or ok != tasks:
        raise BenchError(f"{case}: expected 1 COMPLETED execution with {tasks} SUCCEEDED steps, "
                         f"got executions={status} succeeded={ok}")


class Runner:
    def __init__(self, python: str, floor: Path, files: dict[str, Path], scratch: Path) -> None:
        self.python = python
        self.floor = floor
        self.files = files
        self.scratch = scratch
        self.console = Path(python).parent / "orchestrator"  # bindir of the (unresolved) python
        self._n = 0

    def _fresh(self, prefix: str) -> Path:
        self._n += 1
        d = self.scratch / f"{prefix}-{self._n}"
        d.mkdir()
        return d

    def orch_run(self, case: str, key: str, tasks: int, jobs: int, sync: str | None = None,
                 warm_home: bool = False, tree: str | None = None) -> dict:
        home = self._fresh("home")
        env = base_env()
        env["ORCHESTRATOR_HOME"] = str(home)
        if tree:  # --baseline: another checkout of the package, measured in the same rounds
            env["PYTHONPATH"] = tree + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        if sync:
            env["ORCHESTRATOR_SYNC"] = sync
        cmd = [self.python, "-m", "orchestrator", "run", str(self.files[f"orch:{key}"]), "-q", "-j", str(jobs)]
        if warm_home:  # untimed run first, so the timed one finds an existing, migrated DB
            # ... and --no-cache, or the timed run would be all cache hits (bench_cache.py measures those).
            cmd.append("--no-cache")
            _, p0, _ = timed(cmd, env, home)
            check_rc(case + " (pre-run)", cmd, p0)
        wall, p, cpu = timed(cmd, env, home)
        check_rc(case, cmd, p)
        if not warm_home:
            check_orch_store(case, home, tasks)
        shutil.rmtree(home, ignore_errors=True)
        return {"wall": wall, "cpu": cpu}

    def floor_run(self, case: str, key: str, tasks: int) -> dict:
        d = self._fresh("floor")
        cmd = [self.python, str(self.floor), str(self.files[f"floor:{key}"]), "--db", str(d / "floor.db")]
        wall, p, cpu = timed(cmd, base_env(), d)
        check_rc(case, cmd, p)
        try:
            out = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise BenchError(f"{case}: floor printed no JSON line: {p.stdout!r} {p.stderr!r}") from exc
        if out.get("tasks") != tasks:
            raise BenchError(f"{case}: floor ran {out.get('tasks')} tasks, expected {tasks}")
        shutil.rmtree(d, ignore_errors=True)
        return {"wall": wall, "cpu": cpu, "run_s": out["run_s"], "import_s": out["import_s"], "setup_s": out["setup_s"]}

    def plain(self, case: str, cmd: list[str]) -> dict:
        wall, p, cpu = timed(cmd, base_env(), self.scratch)
        check_rc(case, cmd, p)
        return {"wall": wall, "cpu": cpu}


def cases(r: Runner, long_n: int = 0, baseline: str | None = None) -> dict:
    """Every case: name -> zero-argument callable returning a sample dict. Order = run order."""
    c = {
        "orch.chain1.j1": lambda: r.orch_run("orch.chain1.j1", "chain1", 1, 1),
        "floor.chain1": lambda: r.floor_run("floor.chain1", "chain1", 1),
        "orch.chain50.j1": lambda: r.orch_run("orch.chain50.j1", "chain50", CHAIN_N, 1),
        "floor.chain50": lambda: r.floor_run("floor.chain50", "chain50", CHAIN_N),
        "orch.fan100.j2": lambda: r.orch_run("orch.fan100.j2", "fan100", FAN_TASKS, 2),
        "floor.fan100": lambda: r.floor_run("floor.fan100", "fan100", FAN_TASKS),
        "orch.fan100.j1": lambda: r.orch_run("orch.fan100.j1", "fan100", FAN_TASKS, 1),
        "orch.chain1.j1.sync_normal": lambda: r.orch_run("orch.chain1.j1.sync_normal", "chain1", 1, 1, "normal"),
        "orch.chain50.j1.sync_normal": lambda: r.orch_run("orch.chain50.j1.sync_normal", "chain50", CHAIN_N, 1,
                                                          "normal"),
        "orch.chain1.j1.existing_home": lambda: r.orch_run("orch.chain1.j1.existing_home", "chain1", 1, 1,
                                                           warm_home=True),
        "orch.chain50.j1.existing_home": lambda: r.orch_run("orch.chain50.j1.existing_home", "chain50", CHAIN_N,
                                                            1, warm_home=True),
        "orch.fan100.j2.existing_home": lambda: r.orch_run("orch.fan100.j2.existing_home", "fan100", FAN_TASKS,
                                                           2, warm_home=True),
        "startup.python_m_version": lambda: r.plain("startup.python_m_version",
                                                    [r.python, "-m", "orchestrator", "--version"]),
        "startup.python_pass": lambda: r.plain("startup.python_pass", [r.python, "-c", "pass"]),
    }
    if long_n:
        c["orch.chainL.j1"] = lambda: r.orch_run("orch.chainL.j1", "chainL", long_n, 1)
        c["floor.chainL"] = lambda: r.floor_run("floor.chainL", "chainL", long_n)
        c["orch.chainL.j1.sync_normal"] = lambda: r.orch_run("orch.chainL.j1.sync_normal", "chainL", long_n, 1,
                                                             "normal")
    if baseline:
        c["base.chain1.j1"] = lambda: r.orch_run("base.chain1.j1", "chain1", 1, 1, tree=baseline)
        c["base.chain50.j1"] = lambda: r.orch_run("base.chain50.j1", "chain50", CHAIN_N, 1, tree=baseline)
        c["base.fan100.j2"] = lambda: r.orch_run("base.fan100.j2", "fan100", FAN_TASKS, 2, tree=baseline)
        c["base.fan100.j2.existing_home"] = lambda: r.orch_run("base.fan100.j2.existing_home", "fan100",
                                                               FAN_TASKS, 2, warm_home=True, tree=baseline)
        if long_n:
            c["base.chainL.j1"] = lambda: r.orch_run("base.chainL.j1", "chainL", long_n, 1, tree=baseline)
    if r.console.exists():
        c["startup.console_version"] = lambda: r.plain("startup.console_version",
                                                       [str(r.console), "--version"])
    return c


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------

def stat(xs: list[float], digits: int = 4) -> dict:
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": round(statistics.median(xs), digits), "min": round(min(xs), digits),
            "max": round(max(xs), digits), "n": len(xs)}


def marginal(samples: dict, big: str, small: str, n: int, field: str = "wall") -> dict:
    """Headline = (median(big) - median(small)) / (n - 1); min-max over per-rep paired values."""
    b = [s[field] for s in samples[big]]
    a = [s[field] for s in samples[small]]
    head = (statistics.median(b) - statistics.median(a)) / (n - 1)
    paired = [(y - x) / (n - 1) for x, y in zip(a, b)]
    return {"ms_per_step": round(head * 1e3, 3),
            "paired_ms": {k: (round(v * 1e3, 3) if v is not None else None) for k, v in
                          stat(paired, 6).items() if k != "n"}}


def ratio(samples: dict, num: tuple[str, str], den: tuple[str, str], n: int, field: str = "wall") -> dict:
    """Ratio of marginals: headline from medians; min-max over the per-rep paired ratios."""
    m_num = marginal(samples, num[0], num[1], n, field)["ms_per_step"]
    m_den = marginal(samples, den[0], den[1], n, field)["ms_per_step"]
    per_rep = []
    for i in range(min(len(samples[num[0]]), len(samples[den[0]]))):
        on = (samples[num[0]][i][field] - samples[num[1]][i][field])
        fl = (samples[den[0]][i][field] - samples[den[1]][i][field])
        if fl > 0:
            per_rep.append(on / fl)
    s = stat(per_rep, 3)
    return {"ratio": round(m_num / m_den, 3) if m_den > 0 else None,
            "paired": {"median": s["median"], "min": s["min"], "max": s["max"]}}


def summarise(samples: dict, reps: int, long_n: int = 0) -> dict:
    w = {k: stat([s["wall"] for s in v]) for k, v in samples.items()}
    floor_run_s = {k: stat([s["run_s"] for s in v]) for k, v in samples.items() if k.startswith("floor.")}
    out = {
        "walls_s": w,
        "floor_run_s": floor_run_s,
        "marginal_per_step": {
            "orch_j1_full": marginal(samples, "orch.chain50.j1", "orch.chain1.j1", CHAIN_N),
            "orch_j1_sync_normal": marginal(samples, "orch.chain50.j1.sync_normal",
                                            "orch.chain1.j1.sync_normal", CHAIN_N),
            "floor_wall": marginal(samples, "floor.chain50", "floor.chain1", CHAIN_N),
            "floor_run_s": marginal(samples, "floor.chain50", "floor.chain1", CHAIN_N, "run_s"),
        },
        "marginal_ratio": {
            "orch_full_over_floor": ratio(samples, ("orch.chain50.j1", "orch.chain1.j1"),
                                          ("floor.chain50", "floor.chain1"), CHAIN_N),
            "orch_sync_normal_over_floor": ratio(samples, ("orch.chain50.j1.sync_normal",
                                                           "orch.chain1.j1.sync_normal"),
                                                 ("floor.chain50", "floor.chain1"), CHAIN_N),
        },
    }
    if long_n:
        out["long_chain"] = {
            "tasks": long_n,
            "marginal_per_step": {
                "orch_j1_full": marginal(samples, "orch.chainL.j1", "orch.chain1.j1", long_n),
                "orch_j1_sync_normal": marginal(samples, "orch.chainL.j1.sync_normal",
                                                "orch.chain1.j1.sync_normal", long_n),
                "floor_wall": marginal(samples, "floor.chainL", "floor.chain1", long_n),
                "floor_run_s": marginal(samples, "floor.chainL", "floor.chain1", long_n, "run_s"),
            },
            "marginal_ratio": {
                "orch_full_over_floor": ratio(samples, ("orch.chainL.j1", "orch.chain1.j1"),
                                              ("floor.chainL", "floor.chain1"), long_n),
                "orch_sync_normal_over_floor": ratio(samples, ("orch.chainL.j1.sync_normal",
                                                               "orch.chain1.j1.sync_normal"),
                                                     ("floor.chainL", "floor.chain1"), long_n),
            },
            "fsync_cost_ms_per_step": round((w["orch.chainL.j1"]["median"] - w["orch.chainL.j1.sync_normal"]["median"]
                                             - w["orch.chain1.j1"]["median"] + w["orch.chain1.j1.sync_normal"]["median"])
                                            / (long_n - 1) * 1e3, 3),
        }
    big = "chainL" if long_n else "chain50"
    nb = long_n or CHAIN_N
    out["cpu_marginal"] = {
        "note": f"CPU (user+sys of the runner and the steps it reaped), chain-{nb} - chain-1; less sensitive "
                "to other load on the machine than wall (not immune: a busy VM host slows the vCPUs too)",
        "tasks": nb,
        "orch_j1_full": marginal(samples, f"orch.{big}.j1", "orch.chain1.j1", nb, "cpu"),
        "orch_j1_sync_normal": marginal(samples, f"orch.{big}.j1.sync_normal", "orch.chain1.j1.sync_normal", nb,
                                        "cpu"),
        "floor": marginal(samples, f"floor.{big}", "floor.chain1", nb, "cpu"),
        "ratio_full_over_floor": ratio(samples, (f"orch.{big}.j1", "orch.chain1.j1"),
                                       (f"floor.{big}", "floor.chain1"), nb, "cpu"),
    }
    out["cpu_s"] = {k: stat([s["cpu"] for s in v]) for k, v in samples.items()}
    if "base.chain1.j1" in samples:
        b = {"marginal_chain50_ms": marginal(samples, "base.chain50.j1", "base.chain1.j1", CHAIN_N),
             "ratio_chain50": ratio(samples, ("base.chain50.j1", "base.chain1.j1"), ("floor.chain50", "floor.chain1"),
                                    CHAIN_N),
             "fan_j2_over_floor_wall": round(w["base.fan100.j2"]["median"] / w["floor.fan100"]["median"], 3),
             "fan_j2_existing_home_over_floor_wall": round(w["base.fan100.j2.existing_home"]["median"]
                                                           / w["floor.fan100"]["median"], 3)}
        if long_n:
            b["marginal_chainL_ms"] = marginal(samples, "base.chainL.j1", "base.chain1.j1", long_n)
            b["ratio_chainL"] = ratio(samples, ("base.chainL.j1", "base.chain1.j1"), ("floor.chainL", "floor.chain1"),
                                      long_n)
        out["baseline"] = b
    fan_o, fan_f = w["orch.fan100.j2"]["median"], w["floor.fan100"]["median"]
    out["fan_j2_over_floor_wall"] = round(fan_o / fan_f, 3)
    fsync = (w["orch.chain50.j1"]["median"] - w["orch.chain50.j1.sync_normal"]["median"])
    out["fsync_cost_chain50_s"] = round(fsync, 4)
    out["first_run_db_creation_s"] = round(w["orch.chain1.j1"]["median"]
                                           - w["orch.chain1.j1.existing_home"]["median"], 4)
    ver = w.get("startup.console_version", {}).get("median")
    pm = w["startup.python_m_version"]["median"]
    r = out["marginal_ratio"]["orch_full_over_floor"]["ratio"]
    out["targets"] = {
        "marginal_ratio_le_1.3": r is not None and r <= TARGETS["marginal_ratio_max"],
        "fan_j2_faster_than_floor": fan_o < fan_f,
        "version_python_m_le_0.15s": pm <= TARGETS["version_startup_max_s"],
        "version_console_le_0.15s": (ver <= TARGETS["version_startup_max_s"]) if ver is not None else None,
    }
    return out


def fmt(s: dict, scale: float = 1.0, unit: str = "s", digits: int = 3) -> str:
    if not s or s.get("median") is None:
        return "n/a"
    return (f"{s['median'] * scale:.{digits}f} {unit} "
            f"({s['min'] * scale:.{digits}f}–{s['max'] * scale:.{digits}f})")


def markdown(summary: dict, meta: dict) -> str:
    w = summary["walls_s"]
    m = summary["marginal_per_step"]
    rr = summary["marginal_ratio"]
    t = summary["targets"]

    def mg(x: dict) -> str:
        p = x["paired_ms"]
        return f"{x['ms_per_step']:.3f} ms ({p['min']:.3f}–{p['max']:.3f})"

    def rt(x: dict) -> str:
        p = x["paired"]
        return f"{x['ratio']:.2f}× ({p['min']:.2f}–{p['max']:.2f})" if x["ratio"] is not None else "n/a"

    ok = {True: "✅", False: "❌", None: "n/a"}
    rows = [
        ("1. marginal per step, chain-50 − chain-1 (÷49), orchestrator -j 1, sync FULL (default)",
         mg(m["orch_j1_full"]), ""),
        ("1. marginal per step, floor (whole-process wall)", mg(m["floor_wall"]), ""),
        ("1. **ratio orchestrator / floor** (FULL)", rt(rr["orch_full_over_floor"]),
         f"≤ 1.3 {ok[t['marginal_ratio_le_1.3']]}"),
        ("1. marginal per step, floor from its own `run_s` (reference)", mg(m["floor_run_s"]), ""),
        ("1. *variant* marginal, orchestrator `ORCHESTRATOR_SYNC=normal`", mg(m["orch_j1_sync_normal"]), ""),
        ("1. *variant* ratio orchestrator(normal) / floor", rt(rr["orch_sync_normal_over_floor"]), "info"),
    ]
    if "long_chain" in summary:
        lc = summary["long_chain"]
        n = lc["tasks"]
        rows += [
            (f"1b. *cross-check* marginal from chain-{n} − chain-1 (÷{n - 1}), orchestrator -j 1, FULL",
             mg(lc["marginal_per_step"]["orch_j1_full"]), ""),
            (f"1b. *cross-check* marginal from chain-{n}, floor (wall)", mg(lc["marginal_per_step"]["floor_wall"]), ""),
            (f"1b. *cross-check* **ratio orchestrator / floor**, chain-{n} (FULL)",
             rt(lc["marginal_ratio"]["orch_full_over_floor"]), "≤ 1.3 (same target, less noise)"),
            (f"1b. *cross-check* marginal chain-{n}, `ORCHESTRATOR_SYNC=normal`",
             mg(lc["marginal_per_step"]["orch_j1_sync_normal"]),
             f"fsync ≈ {lc['fsync_cost_ms_per_step']:.3f} ms/step"),
            (f"1b. *cross-check* ratio orchestrator(normal) / floor, chain-{n}",
             rt(lc["marginal_ratio"]["orch_sync_normal_over_floor"]), "info"),
        ]
    cm = summary["cpu_marginal"]
    rows += [
        (f"1c. *CPU* marginal per step (user+sys, chain-{cm['tasks']}), orchestrator FULL / normal / floor",
         f"{cm['orch_j1_full']['ms_per_step']:.3f} / {cm['orch_j1_sync_normal']['ms_per_step']:.3f} / "
         f"{cm['floor']['ms_per_step']:.3f} ms", "less load-sensitive than wall"),
        (f"1c. *CPU* ratio orchestrator / floor (chain-{cm['tasks']}, FULL)", rt(cm["ratio_full_over_floor"]),
         "info"),
    ]
    rows += [
        ("2. `orchestrator run` chain-50 -j 1 wall (fresh home, FULL)", fmt(w["orch.chain50.j1"]), ""),
        ("2. *variant* chain-50 -j 1 wall, `ORCHESTRATOR_SYNC=normal`",
         fmt(w["orch.chain50.j1.sync_normal"]), f"fsync cost ≈ {summary['fsync_cost_chain50_s']:.3f} s"),
        ("2. `orchestrator run` chain-50 -j 1 wall (existing home)", fmt(w["orch.chain50.j1.existing_home"]), ""),
        ("2. floor chain-50 wall", fmt(w["floor.chain50"]), ""),
        ("2. `orchestrator run` chain-1 wall (fresh home)", fmt(w["orch.chain1.j1"]), ""),
        ("2. `orchestrator run` chain-1 wall (existing home)", fmt(w["orch.chain1.j1.existing_home"]),
         f"first-run DB creation ≈ {summary['first_run_db_creation_s']:.3f} s"),
        ("2. floor chain-1 wall", fmt(w["floor.chain1"]), ""),
        ("3. fan 1→100→1 orchestrator -j 2 wall", fmt(w["orch.fan100.j2"]),
         f"faster than floor {ok[t['fan_j2_faster_than_floor']]} "
         f"(ratio {summary['fan_j2_over_floor_wall']:.2f})"),
        ("3. fan 1→100→1 orchestrator -j 2 wall (existing home: template already validated)",
         fmt(w["orch.fan100.j2.existing_home"]),
         f"ratio to floor {w['orch.fan100.j2.existing_home']['median'] / w['floor.fan100']['median']:.2f}"),
        ("3. fan 1→100→1 floor wall (sequential)", fmt(w["floor.fan100"]), ""),
        ("3. *reference* fan 1→100→1 orchestrator -j 1 wall", fmt(w["orch.fan100.j1"]), ""),
        ("4. `python -m orchestrator --version`", fmt(w["startup.python_m_version"]),
         f"≤ 0.15 s {ok[t['version_python_m_le_0.15s']]}"),
        ("4. `<bindir>/orchestrator --version` (console script)", fmt(w.get("startup.console_version")),
         f"≤ 0.15 s {ok[t['version_console_le_0.15s']]}"),
        ("4. `python -c pass` (reference)", fmt(w["startup.python_pass"]), ""),
    ]
    if "baseline" in summary:
        b = summary["baseline"]
        rows += [
            ("5. *baseline* (`--baseline` tree, same rounds) marginal chain-50 / ratio to floor",
             f"{mg(b['marginal_chain50_ms'])} / {rt(b['ratio_chain50'])}", meta.get("baseline") or ""),
            ("5. *baseline* fan -j 2 wall, fresh / existing home (ratio to floor)",
             f"{fmt(w['base.fan100.j2'])} ({b['fan_j2_over_floor_wall']:.2f}) / "
             f"{fmt(w['base.fan100.j2.existing_home'])} ({b['fan_j2_existing_home_over_floor_wall']:.2f})", ""),
            ("5. *baseline* chain-1 wall (fresh home)", fmt(w["base.chain1.j1"]), ""),
        ]
        if "ratio_chainL" in b:
            rows.append(("5. *baseline* marginal chain-L / ratio to floor",
                         f"{mg(b['marginal_chainL_ms'])} / {rt(b['ratio_chainL'])}", ""))
    head = (f"reps={meta['reps']} (median, min–max) · python {meta['python_version']} · "
            f"sqlite {meta['sqlite_version']} · load {meta['loadavg_before']} → {meta['loadavg_after']} · "
            f"{meta['elapsed_s']:.0f} s total")
    lines = [head, "", "| measure | value | target / note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------

def validate(python: str, files: list[Path], cwd: Path) -> None:
    cmd = [python, "-m", "orchestrator", "validate", "--json", *map(str, files)]
    p = subprocess.run(cmd, env=base_env(), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        res = json.loads(p.stdout)
    except ValueError:
        res = None
    if p.returncode != 0 or not res or not res.get("ok") or res.get("errors") or res.get("warnings"):
        raise BenchError(f"generated templates do not validate (rc={p.returncode}):\n{p.stdout}\n{p.stderr}")


def git_rev() -> str | None:
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=7, help="repetitions of every case (default 7)")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter for both runners; its bindir must hold the `orchestrator` console script "
                         "(default: this interpreter)")
    ap.add_argument("--floor", type=Path, default=Path(os.environ.get("BENCH_FLOOR", DEFAULT_FLOOR)),
                    help=f"path to minimal_runner.py (default {DEFAULT_FLOOR})")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    ap.add_argument("--long", type=int, default=200, metavar="N",
                    help="also run chain-N (orchestrator FULL + normal, floor) as a low-noise cross-check of the "
                         "marginal; 0 disables (default 200)")
    ap.add_argument("--inherit-bytecode-env", action="store_true",
                    help="pass PYTHONDONTWRITEBYTECODE/PYTHONPYCACHEPREFIX through unchanged instead of giving the "
                         "children a bytecode cache in the temp dir (warmed by the warm-up round)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the discarded warm-up round")
    ap.add_argument("--baseline", metavar="TREE",
                    help="a second checkout of the package (e.g. `git archive HEAD | tar -x -C TREE`): its chain "
                         "and fan cases run in the same rounds with PYTHONPATH=TREE, for a before/after in one run")
    a = ap.parse_args(argv)
    python = os.path.abspath(a.python)  # NOT resolved: a venv's python is a symlink out of the venv
    if not os.path.exists(python):
        raise BenchError(f"--python {python} does not exist")
    if not a.floor.is_file():
        raise BenchError(f"floor runner not found at {a.floor}: the floor (minimal_runner.py) is not part of this "
                         "repository; pass --floor PATH (or set BENCH_FLOOR=PATH); the default is "
                         "../shared/bench/minimal_runner.py next to the repository")
    if a.long and a.long < 3:
        raise BenchError("--long must be 0 or >= 3")
    if a.reps < 1:
        raise BenchError("--reps must be >= 1")

    t_start = time.perf_counter()
    la0 = loadavg()
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        tmp_p = Path(tmp)
        global PYCACHE
        PYCACHE = None if a.inherit_bytecode_env else str(tmp_p / "pycache")
        files = generate(tmp_p, a.long)
        validate(python, [files[k] for k in files if k.startswith("orch:")], tmp_p)
        scratch = tmp_p / "scratch"
        scratch.mkdir()
        r = Runner(python, a.floor, files, scratch)
        cs = cases(r, a.long, os.path.abspath(a.baseline) if a.baseline else None)
        names = list(cs)
        if not a.no_warmup:
            for n in names:
                cs[n]()
        samples: dict[str, list[dict]] = {n: [] for n in names}
        for rep in range(a.reps):
            k = rep % len(names)  # rotate the start so no case always runs in the same slot
            for n in names[k:] + names[:k]:
                samples[n].append(cs[n]())
            print(f"rep {rep + 1}/{a.reps} done ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr)

    PYCACHE = None
    ver = subprocess.run([python, "-m", "orchestrator", "--version"], capture_output=True, text=True).stdout.strip()
    pyv = subprocess.run([python, "-c", "import sys, sqlite3; print(sys.version.split()[0], sqlite3.sqlite_version)"],
                         capture_output=True, text=True).stdout.split()
    meta = {
        "reps": a.reps, "long_chain": a.long, "python": python, "python_version": pyv[0] if pyv else None,
        "sqlite_version": pyv[1] if len(pyv) > 1 else None, "orchestrator_version": ver,
        "console_script": str(r.console) if r.console.exists() else None,
        "floor": str(a.floor), "git": git_rev(), "baseline": a.baseline, "host": platform.node(), "cpus": os.cpu_count(),
        "bytecode": ("inherited env (PYTHONDONTWRITEBYTECODE=%s)" % os.environ.get("PYTHONDONTWRITEBYTECODE", "")
                     if a.inherit_bytecode_env else "children cache .pyc under the temp dir (PYTHONPYCACHEPREFIX), "
                     "warmed by the warm-up round; PYTHONDONTWRITEBYTECODE removed"),
        "loadavg_before": la0, "loadavg_after": loadavg(),
        "elapsed_s": round(time.perf_counter() - t_start, 1),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "notes": [
            "every orchestrator run uses a fresh ORCHESTRATOR_HOME: first-run DB creation + migration is included "
            "(see orch.chain1.j1.existing_home for the cost without it)",
            "orchestrator store default synchronous=FULL; *.sync_normal cases set ORCHESTRATOR_SYNC=normal",
            "floor = minimal_runner.py with a fresh --db per run (WAL, synchronous=NORMAL, sequential)",
            "bytecode: see meta.bytecode; with the cache, the warm-up round pays the one-time compilation",
            "wall = whole process, timed by this script around subprocess.run with captured output",
            "marginal headline = (median wall chain-50 - median wall chain-1)/49; min-max over per-rep pairs",
        ],
    }
    summary = summarise(samples, a.reps, a.long)
    table = markdown(summary, meta)
    result = {"meta": meta, "summary": summary, "samples": samples, "table_md": table}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"meta": meta, "summary": summary}, indent=2))
    print()
    print(table)
    print(f"\nsaved {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
