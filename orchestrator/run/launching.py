"""Launching a runner's ready leaves and collecting what their processes' ends mean.

Owns: the launch of ready steps within the parallelism of ``-j`` and of every enclosing template,
their mutexes and semaphores, preparation and time limit (``launch_ready``), starting their
processes with their sidecars and a containerSet's containers before "main" (``start_steps``),
and routing a supervised process's end to the step's outcome (``complete``). A mixin of
:class:`~orchestrator.run.runner.Runner` (uses its state, set in its ``__init__``).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.errors import OrchestratorError
from orchestrator.model import StepState
from orchestrator.plan.graph import Graph, Node
from orchestrator.plan.resolve import ResolveError
from orchestrator.run import daemons, diskfull, ingest, limits, locks, outcome, stepfiles, supervise
from orchestrator.run.bookkeeping import StepBook
from orchestrator.run.executor import Executor
from orchestrator.run.outcome import Running
from orchestrator.run.prepare import prepare_leaf
from orchestrator.run.steps import StepProcess, StepResult
from orchestrator.run.watch import Supervisor

SIDECAR = "sidecar"  # supervisor key (SIDECAR, node id, index) of a sidecar process
BEFORE = "before"  # supervisor key (BEFORE, node id, index) of a containerSet container before "main"


class Launching(StepBook):
    """Starts ready leaves and routes their processes' ends; a mixin of the runner (which provides
    ``halted``); records through :class:`~orchestrator.run.bookkeeping.StepBook`."""

    graph: Graph
    executor: Executor
    jobs: int
    sup: Supervisor
    launchable: list[tuple[int, str]]
    running: dict[str, Running]
    scope_running: dict[str, int]
    daemoned: dict[str, Running]
    sidecars: dict[str, list[StepProcess]]
    attempts: dict[str, int]
    first_start: dict[str, float]
    log_paths: dict[str, str]
    gate: Callable[[], bool] | None

    if TYPE_CHECKING:
        def act(self) -> None: ...  # the runner's

    def scopes(self, node: Node) -> list[str]:
        out, scope = [""], node.scope
        while scope:
            out.append(scope)
            scope = self.graph.nodes[scope].scope
        return out

    def can_launch(self, node: Node) -> bool:
        for s in self.scopes(node):
            t = self.graph.nodes[s].template if s else self.graph.root_template
            if t.parallelism is not None and self.scope_running.get(s, 0) >= t.parallelism:
                return False
        return True

    def launch_ready(self) -> list[str]:
        started: list[str] = []
        held: list[tuple[int, str]] = []
        while self.launchable and len(self.running) < self.jobs:
            order, nid = heapq.heappop(self.launchable)
            node = self.graph.nodes[nid]
            if self.halted(node):
                self.settle(nid, StepState.OMITTED)
                continue
            if not self.can_launch(node) or not locks.take(self, node):
                held.append((order, nid))
                continue
            attempt = self.attempts.get(nid, 0) + 1
            if self.gate is not None and self.ctx.bound_artifacts:
                self.act()  # preparing reads the execution's input records (attestation): not before its start commits
            try:
                prep = prepare_leaf(self, node, attempt)
            except (ResolveError, OrchestratorError, OSError) as exc:
                locks.release(self, node)
                diskfull.check(exc, f"preparing step {nid!r}")
                self.fail(nid, f"cannot prepare step: {exc}")
                continue
            try:
                limit, why = limits.step_limit(self, node)
            except ResolveError as exc:
                locks.release(self, node)
                self.fail(nid, str(exc))
                continue
            self.attempts[nid] = attempt
            self.first_start.setdefault(nid, time.monotonic())
            self.log_paths[nid] = prep.log_path
            try:
                handle = self.executor.submit(self, node, prep, attempt)
            except OrchestratorError as exc:  # e.g. the engine could not make the step's pod
                locks.release(self, node)
                self.fail(nid, f"cannot start step: {exc}")
                continue
            self.running[nid] = Running(handle, prep, ingest.Tail(prep.tracking_path),
                                        time.monotonic() + limit if limit else None, attempt, why)
            for s in self.scopes(node):
                self.scope_running[s] = self.scope_running.get(s, 0) + 1
            self.record(nid, StepState.RUNNING, f"attempt {attempt}" if attempt > 1 else "")
            started.append(nid)
        for item in held:
            heapq.heappush(self.launchable, item)
        return started

    def start_steps(self, nids: list[str]) -> None:
        if nids and self.gate is not None:
            self.act()  # the execution's start is committed before its first process starts
        for nid in nids:
            run = self.running[nid]
            for k, side in enumerate(run.prep.sidecars):  # Argo starts sidecars with the main container
                proc = self.executor.companion(side)
                self.sidecars.setdefault(nid, []).append(proc)
                self.sup.start((SIDECAR, nid, k), proc)
            if run.prep.before:  # containerSet: the other containers first, in dependency order
                self.sup.start((BEFORE, nid, 0), self.executor.companion(run.prep.before[0][1]))
            else:
                self.sup.start(nid, run.proc)
            daemons.started(self, nid)

    # ------------------------------------------------------------------ completion
    def complete(self, nid: Any, result: StepResult) -> None:
        if isinstance(nid, tuple) and nid[0] == BEFORE:
            return self.before_done(nid[1], nid[2], result)
        if isinstance(nid, tuple):  # a sidecar ended: the main container decides the step
            return
        if nid in self.daemoned:  # a detached daemon was killed (its caller ended) or ended
            return daemons.exited(self, nid)
        for proc in self.sidecars.pop(nid, []):  # the main container ended: its sidecars are stopped
            proc.kill("the step's main container ended", grace=supervise.KILL_GRACE)
        outcome.complete(self, nid, result)

    def before_done(self, nid: str, k: int, result: StepResult) -> None:
        """A containerSet container before "main" ended: the next one starts, or main; if it failed,
        nothing after it runs and the step fails with its exit (as its dependents never start)."""
        run = self.running.get(nid)
        if run is None:
            return
        name = run.prep.before[k][0]
        if result.exit_code != 0 or result.killed or result.error:
            stepfiles.note(run.prep.log_path, f"container {name!r} ended with exit code {result.exit_code}"
                           f"{' (' + result.killed + ')' if result.killed else ''}: main did not run")
            return self.complete(nid, result)
        if k + 1 < len(run.prep.before):
            self.sup.start((BEFORE, nid, k + 1), self.executor.companion(run.prep.before[k + 1][1]))
        else:
            self.sup.start(nid, run.proc)
