#!/usr/bin/env python3
"""Side-by-side benchmark of the Ray executor (issue 18), everything measured in this one run.

Starts a two-node Ray cluster on 127.0.0.1 (``ray.cluster_utils.Cluster`` in a helper process:
head ``node1`` + worker ``node2``, 1 CPU each, 80 MB object stores, each node its own working
root) and keeps it running; then, interleaved over ``--reps`` repetitions (medians reported):

1. per-step overhead: the marginal cost of a step in ``orchestrator run --executor ray:ADDR`` of a
   chain-N (the time between consecutive steps' ends, from the store's records) next to a raw Ray task running the same
   ``true`` subprocess (``ray.get(task.remote())`` in a loop on an already connected driver);
   target ≤ 2×; the executor's task body alone (``ray_task.run_step`` streamed, no runner) and
   the local executor's marginal on the same chain is printed too (the runner's own
   per-step bookkeeping, which no executor can go below);
2. fan 1→100→1: ``--executor ray`` ``-j 2`` on the two nodes vs the local executor ``-j 2``;
3. chain-50 of the local executor (``-j 1``): this tree vs ``--main`` (default ``/work/main``), the
   seam did not regress the host path;
4. time from ``run`` (process start) to the first step's first instruction on the running cluster.

    .venv/bin/python bench/bench_ray.py --reps 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CLUSTER = """
import os, sys, time
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
from ray.cluster_utils import Cluster
root = sys.argv[1]
def args(n):
    os.makedirs(f"{root}/{n}", exist_ok=True)
    return dict(num_cpus=1, resources={n: 100}, object_store_memory=80 << 20, node_ip_address="127.0.0.1",
                include_dashboard=False, env_vars={"ORCHESTRATOR_RAY_WORKDIR": f"{root}/{n}"})
c = Cluster(initialize_head=True, head_node_args=args("node1"))
c.add_node(**args("node2"))
print(c.address, flush=True)
try:
    sys.stdin.read()  # until the benchmark closes our stdin
finally:
    c.shutdown()
"""
RAW = """
import os, subprocess, sys, time
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
import ray
ray.init(address=sys.argv[1], logging_level="warning", log_to_driver=False)
@ray.remote(num_cpus=1)
def step():
    return subprocess.run(["true"]).returncode
ray.get([step.remote() for _ in range(4)])  # warm workers
n = int(sys.argv[2])
from orchestrator.run import ray_task  # the executor's task body, alone (no runner around it)
import ray.cloudpickle as cp
cp.register_pickle_by_value(ray_task)
try:
    from orchestrator.run import ray_node  # its node helpers (a module of their own since issue 18's split)
    cp.register_pickle_by_value(ray_node)
except ImportError:
    pass
body = ray.remote(num_returns="streaming", max_retries=0)(ray_task.run_step)
def payload():
    return {"argv": ["true"], "env": {"PATH": "/usr/bin:/bin"}, "cwd": "/nonexistent/d", "driver_dir": "/nonexistent/d",
            "token": "bench-0123456789", "grace": 1, "log_cap": 1000, "tracking": "/nonexistent/d/t.jsonl",
            "outputs": [], "input_dests": []}
task = body.options(num_cpus=1)
def one():  # read as the executor reads: up to the end item ("all": to the stream's end, as before)
    gen = task.remote(payload())
    for ref in gen:
        if ray.get(ref)[0] == "end" and sys.argv[3] == "end":
            break
    return gen
for _ in range(4):
    one()
raws, bodies = [], []
for _ in range(n):  # alternated, so that both see the same load
    t0 = time.perf_counter()
    ray.get(step.remote())
    t1 = time.perf_counter()
    gen = one()
    raws.append(t1 - t0)
    bodies.append(time.perf_counter() - t1)
    ray.wait([gen.completed()], timeout=10)  # untimed: the raw task never waits for the body's cleanup
import statistics
raw = statistics.median(raws)
print(raw, statistics.median(bodies))
"""


def template(name: str, tasks: list[tuple[str, list[str]]], command: str = '["true"]') -> str:
    lines = ["apiVersion: argoproj.io/v1alpha1", "kind: WorkflowTemplate", "metadata:", f"  name: {name}",
             "  labels:", "    scenarios.ai.sap.com/id: orchestrator-bench", '    ai.sap.com/version: "1.0.0"',
             "  annotations:", '    scenarios.ai.sap.com/name: "orchestrator benchmark"',
             f"    executables.ai.sap.com/name: {name}", "spec:", "  entrypoint: main", "  templates:",
             "    - name: main", "      dag:", "        tasks:"]
    for task, deps in tasks:
        lines += [f"          - name: {task}", "            template: noop"]
        if deps:
            lines.append(f"            dependencies: [{', '.join(deps)}]")
    lines += ["    - name: noop", "      container:", "        image: busybox", f"        command: {command}"]
    return "\n".join(lines) + "\n"


def chain(n: int) -> list[tuple[str, list[str]]]:
    return [(f"i{k}", [f"i{k - 1}"] if k else []) for k in range(n)]


def fan(width: int) -> list[tuple[str, list[str]]]:
    mids = [f"m{k}" for k in range(width)]
    return [("start", [])] + [(m, ["start"]) for m in mids] + [("end", mids)]


def run(tmp: Path, wf: Path, *args: str, env: dict[str, str] | None = None, tree: Path = REPO) -> float:
    return run_steps(tmp, wf, *args, env=env, tree=tree)[0]


def run_steps(tmp: Path, wf: Path, *args: str, env: dict[str, str] | None = None,
              tree: Path = REPO) -> tuple[float, float]:
    """The run's wall, and the per-step marginal inside it: the median time between consecutive
    steps' ends, from the store's records (the first step, which may start the job's worker on a
    node, and the process start-up are left out; the median, as for the raw task's round trips,
    keeps other sessions' load spikes on this shared box out of the figure)."""
    home = Path(tempfile.mkdtemp(dir=tmp))
    e = {**os.environ, "ORCHESTRATOR_HOME": str(home), "PYTHONPATH": str(tree), **(env or {})}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "orchestrator", "run", "-q", "--json", *args, str(wf)], env=e,
                       capture_output=True, text=True, cwd=tree)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{wf.name} failed:\n{p.stdout}\n{p.stderr}")
    eid = json.loads(p.stdout)["id"]
    shown = subprocess.run([sys.executable, "-m", "orchestrator", "executions", "show", eid, "--json"], env=e,
                           capture_output=True, text=True, cwd=tree, check=True)
    ends = sorted(st["finishedAt"] for st in json.loads(shown.stdout)["steps"] if st["kind"] == "leaf")
    if len(ends) < 3:
        return wall, (ends[-1] - ends[0]) / max(1, len(ends) - 1)
    return wall, statistics.median(b - a for a, b in zip(ends[1:], ends[2:]))


def first_step(tmp: Path, wf: Path, env: dict[str, str]) -> float:
    """Seconds from the run's process start to the step's first instruction (its own clock)."""
    home = Path(tempfile.mkdtemp(dir=tmp))
    e = {**os.environ, "ORCHESTRATOR_HOME": str(home), "PYTHONPATH": str(REPO), **env}
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "orchestrator", "run", "-q", str(wf)], env=e, capture_output=True,
                   check=True)
    log = next(home.glob("executions/*/steps/*/attempt-1.log")).read_text()
    return float([ln for ln in log.splitlines() if not ln.startswith("[")][0]) - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--chain", type=int, default=31, help="chain length for the per-step overhead")
    ap.add_argument("--main", type=Path, default=REPO.parent.parent / "main", help="tree of main for case 3")
    ap.add_argument("--before", type=Path, help="another tree (e.g. `git archive` of an older commit): its Ray "
                    "per-step marginal and task body, interleaved with this tree's")
    ap.add_argument("--overhead-only", action="store_true", help="case 1 only (per-step overhead)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    wf = {name: tmp / f"{name}.yaml" for name in ("chain1", "chainN", "chain50", "fan100", "clock")}
    wf["chain1"].write_text(template("bench-chain-1", chain(1)))
    wf["chainN"].write_text(template(f"bench-chain-{a.chain}", chain(a.chain)))
    wf["chain50"].write_text(template("bench-chain-50", chain(50)))
    wf["fan100"].write_text(template("bench-fan-100", fan(100)))
    wf["clock"].write_text(template("bench-first-step", chain(1), '["python3", "-c", "import time; print(time.time())"]'))
    t0 = time.perf_counter()
    cluster = subprocess.Popen([sys.executable, "-c", CLUSTER, str(tmp / "nodes")], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert cluster.stdout is not None
    address = cluster.stdout.readline().strip()
    started = time.perf_counter() - t0
    ray_env = {"ORCHESTRATOR_EXECUTOR": f"ray:{address}"}
    out: dict[str, list[float]] = {k: [] for k in ("ray_chainN", "local_chainN", "raw_task", "task_body", "ray_fan", "local_fan",
                                                 "local_chain50", "main_chain50", "first_step", "before_chainN",
                                                 "before_raw_task", "before_task_body")}
    try:
        run(tmp, wf["chain1"], env=ray_env)  # warm-up (workers of the first job, bytecode)
        for _ in range(a.reps):
            out["ray_chainN"].append(run_steps(tmp, wf["chainN"], env=ray_env)[1])
            local = {"ORCHESTRATOR_EXECUTOR": "local"}
            out["local_chainN"].append(run_steps(tmp, wf["chainN"], env=local)[1])
            raw = subprocess.run([sys.executable, "-c", RAW, address, str(a.chain), "end"], capture_output=True,
                                 text=True, check=True)
            raw_s, body_s = raw.stdout.strip().splitlines()[-1].split()
            out["raw_task"].append(float(raw_s))
            out["task_body"].append(float(body_s))
            if a.before:
                out["before_chainN"].append(run_steps(tmp, wf["chainN"], env=ray_env, tree=a.before)[1])
                raw = subprocess.run([sys.executable, "-c", RAW, address, str(a.chain), "all"], capture_output=True,
                                     text=True, check=True, env={**os.environ, "PYTHONPATH": str(a.before)})
                raw_s, body_s = raw.stdout.strip().splitlines()[-1].split()
                out["before_raw_task"].append(float(raw_s))
                out["before_task_body"].append(float(body_s))
            if a.overhead_only:
                continue
            out["ray_fan"].append(run(tmp, wf["fan100"], "-j", "2", env=ray_env))
            out["local_fan"].append(run(tmp, wf["fan100"], "-j", "2", env={"ORCHESTRATOR_EXECUTOR": "local"}))
            out["local_chain50"].append(run(tmp, wf["chain50"], env={"ORCHESTRATOR_EXECUTOR": "local"}))
            if (a.main / "orchestrator").is_dir():
                out["main_chain50"].append(run(tmp, wf["chain50"], env={"ORCHESTRATOR_EXECUTOR": "local"},
                                               tree=a.main))
            out["first_step"].append(first_step(tmp, wf["clock"], ray_env))
    finally:
        assert cluster.stdin is not None
        cluster.stdin.close()
        cluster.wait(timeout=60)
    med = {k: statistics.median(v) for k, v in out.items() if v}
    if a.overhead_only:
        for k in ("ray_fan", "local_fan", "local_chain50", "first_step"):
            med[k] = float("nan")
    marginal = med["ray_chainN"]
    local_marginal = med["local_chainN"]
    summary = {
        "cluster_start_s": round(started, 2),
        "ray_step_marginal_ms": round(marginal * 1000, 1),
        "raw_ray_task_true_ms": round(med["raw_task"] * 1000, 1),
        "local_step_marginal_ms": round(local_marginal * 1000, 1),
        "overhead_ratio": round(marginal / med["raw_task"], 2),
        "overhead_ratio_paired": round(statistics.median(c / r for c, r in zip(out["ray_chainN"], out["raw_task"])), 2),
        "executor_task_alone_ms": round(med["task_body"] * 1000, 1),
        "executor_task_alone_ratio": round(med["task_body"] / med["raw_task"], 2),
        "fan100_ray_j2_s": round(med["ray_fan"], 2), "fan100_local_j2_s": round(med["local_fan"], 2),
        "chain50_local_this_tree_s": round(med["local_chain50"], 3),
        "chain50_local_main_s": round(med["main_chain50"], 3) if "main_chain50" in med else None,
        "run_to_first_step_s": round(med["first_step"], 2),
        "reps": a.reps,
        "each_rep_marginal_raw_ms": [[round(c * 1000, 1), round(r * 1000, 1)] for c, r in zip(out["ray_chainN"], out["raw_task"])],
    }
    if a.before:
        summary.update({
            "before_ray_step_marginal_ms": round(med["before_chainN"] * 1000, 1),
            "before_raw_ray_task_true_ms": round(med["before_raw_task"] * 1000, 1),
            "before_overhead_ratio": round(med["before_chainN"] / med["before_raw_task"], 2),
            "before_overhead_ratio_paired": round(statistics.median(
                c / r for c, r in zip(out["before_chainN"], out["before_raw_task"])), 2),
            "before_executor_task_alone_ms": round(med["before_task_body"] * 1000, 1),
            "before_each_rep_marginal_raw_ms": [[round(c * 1000, 1), round(r * 1000, 1)]
                                                for c, r in zip(out["before_chainN"], out["before_raw_task"])],
        })
    print(json.dumps(summary, indent=2))
    print(textwrap.dedent(f"""
        | figure | value |
        | --- | --- |
        | per-step overhead, Ray executor (marginal of chain-{a.chain}) | {summary['ray_step_marginal_ms']} ms |
        | raw Ray task running `true` | {summary['raw_ray_task_true_ms']} ms |
        | ratio (target ≤ 2): of the medians / median of each repetition's | {summary['overhead_ratio']} / {summary['overhead_ratio_paired']} |
        | the executor's task alone (ray_task.run_step, no runner) | {summary['executor_task_alone_ms']} ms ({summary['executor_task_alone_ratio']}× raw) |
        | per-step overhead, local executor (same chain) | {summary['local_step_marginal_ms']} ms |
        | fan 1→100→1, Ray -j 2 / local -j 2 | {summary['fan100_ray_j2_s']} s / {summary['fan100_local_j2_s']} s |
        | chain-50 local executor, this tree / main | {summary['chain50_local_this_tree_s']} s / {summary['chain50_local_main_s']} s |
        | `run` to first step on a running cluster | {summary['run_to_first_step_s']} s |"""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
