"""One execution over a compiled graph: ready set, parallelism, retries, deadlines, stop, cache.

Owns: the execution's status machine (UNKNOWN -> PENDING -> RUNNING -> COMPLETED/DEAD, and
STOPPING -> STOPPED) — the runner is its only writer besides the reaper — and every step state
change. Changes are group-committed (at most every 10 ms, fsynced) while the processes they
announce already run; the terminal status is committed before ``run`` returns. Leaf nodes run
through :mod:`orchestrator.run.steps`, watched from this thread by one epoll-based supervisor (no
thread per step); enter/exit nodes settle instantly; a leaf
whose cache key (or resume record) matches is settled from recorded outputs without running.
The onExit handler runs after everything else; Ctrl-C is a stop request. Imports down only.
"""

from __future__ import annotations

import gc
import heapq
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.model import Attempt, Execution, Status, StepRecord, StepState
from orchestrator.plan.graph import ENTER, LEAF, Graph, Node
from orchestrator.plan.resolve import Context, NodeData, ResolveError
from orchestrator.run import (
    daemons,
    diskfull,
    ending,
    flow,
    ingest,
    limits,
    locks,
    mlflow_endpoint,
    outcome,
    reaper,
    recorded,
    supervise,
    suspend,
)
from orchestrator.run.outcome import Running
from orchestrator.run.prepare import Prepared, base_env, prepare_leaf, safe_name
from orchestrator.run.executor import Executor, choose
from orchestrator.run.steps import StepProcess, StepResult, kill_tagged
from orchestrator.run.watch import Supervisor
from orchestrator.store import Store
from orchestrator.store.artifacts import ObjectStore

EventSink = Callable[[str, StepState, str, float], None]
SIDECAR = "sidecar"  # supervisor key (SIDECAR, node id, index) of a sidecar process
BEFORE = "before"  # supervisor key (BEFORE, node id, index) of a containerSet container before "main"
METRICS_EVERY = 2.0
GROUP_COMMIT = 0.01
STOP_POLL = 0.2
REAP_EVERY = 30.0


class Runner:
    """Runs one execution to a terminal status. Use from a single thread."""

    def __init__(self, store: Store, objects: ObjectStore, graph: Graph, execution: Execution, *,
                 params: dict[str, str], bound: dict[str, Path], jobs: int = 1,
                 on_event: EventSink | None = None, sandbox: tuple[bool, str] = (False, ""),
                 cache: bool = True, reuse: dict[str, tuple[str, dict[str, Any], str]] | None = None,
                 force: set[str] | None = None, executor: Executor | None = None) -> None:
        self.executor = executor or choose()  # where leaves run (DESIGN §5): the host, a container engine
        self.store, self.objects, self.graph, self.ex = store, objects, graph, execution
        self.rg = execution.resource_group
        self.jobs = max(1, min(jobs, graph.spec.parallelism or jobs))
        self.on_event = on_event or (lambda *_a: None)
        self.sandbox, self.cache, self.reuse, self.force = sandbox, cache, reuse or {}, force or set()
        self.workdir = Path(execution.workdir)
        self.ctx = Context(graph, execution.id, dict(params), dict(bound),
                           {nid: NodeData() for nid in graph.nodes}, created=execution.created_at,
                           failures=self.failure_list)
        self.preds = graph.pred
        self.waiting = {nid: len(p) for nid, p in self.preds.items()}
        self.ready: list[tuple[int, str]] = []
        self.launchable: list[tuple[int, str]] = []
        self.delayed: list[tuple[float, int, str]] = []  # retries waiting for their backoff, suspended steps
        self.suspended: set[str] = set()  # suspend nodes waiting (run.suspend)
        self.dag_targets: dict[str, set[str]] = {}  # DAG scope -> the tasks its ``target`` needs (run.flow)
        self.daemon_probes: dict[str, Any] = {}  # daemon steps not ready yet (run.daemons)
        self.daemoned: dict[str, Running] = {}  # ready daemon steps: running until their caller ends
        self.memo_hits: set[str] = set()  # memoized steps/dag calls (ENTER ids): nothing inside runs
        self.running: dict[str, Running] = {}
        self.scope_running: dict[str, int] = {}
        self.sup = Supervisor(spawners=self.jobs if self.jobs > 1 else 0)
        self.dirty: dict[str, None] = {}  # nodes whose record changed since the last commit (ordered)
        self.dirty_attempts: list[Attempt] = []
        self.dirty_cache: list[tuple[str, str, str]] = []  # (key, node id, outputs JSON)
        self.dirty_since = 0.0
        self.messages: dict[str, str] = {}
        self.log_paths: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.first_start: dict[str, float] = {}
        self.keys: dict[str, tuple[str, str, str]] = {}  # nid -> (key, components JSON, note)
        self.urls: dict[str, dict[str, str]] = {}
        self.path_digests: dict[str, str] = {}
        self.global_outputs: dict[str, str] = {}
        self.base_env = base_env()
        self.failures: list[str] = []
        self.fail_kinds: dict[str, str] = {}  # failed node -> "failed" | "error" (continueOn)
        # Argo's dag.failFast, per DAG: once a task of it failed, none of its tasks starts any more,
        # except those already ready then (with no parallelism limit Argo had started them).
        self.sidecars: dict[str, list[StepProcess]] = {}
        self.scope_failed: set[str] = set()
        self.admitted: set[str] = set()
        self.in_handler = False
        self.t0 = time.monotonic()
        wf_deadline, self.deadline_problem = limits.workflow_deadline(self)
        self.deadline_seconds = wf_deadline
        self.deadline = self.t0 + wf_deadline if wf_deadline else None
        self.stop_reason = ""
        self.stopped = False
        self.interrupts = 0  # SIGINTs received (supervise.sigint_stops); the second one kills at once
        self.forced = False
        self.want_result = outcome.result_refs(graph)
        self.lost = ""
        self.beat_stop = threading.Event()
        self.committer: supervise.Committer | None = None
        self.made_dirs: set[str] = set()

    # ------------------------------------------------------------------ bookkeeping
    def record(self, nid: str, state: StepState, message: str = "") -> None:
        node = self.graph.nodes[nid]
        d = self.ctx.data[nid]
        d.state = state
        now = time.time()
        if state == StepState.RUNNING:
            d.started = d.started or now
        elif state.done:
            d.finished = now
            d.started = d.started or now
        if message:
            self.messages[nid] = message
        self.changed()
        self.dirty[nid] = None  # the row is built when it is committed: only the last state counts
        if node.kind == LEAF and state != StepState.PENDING:
            self.on_event(nid, state, message, time.monotonic() - self.t0)

    def _row(self, nid: str) -> StepRecord:
        node = self.graph.nodes[nid]
        d = self.ctx.data[nid]
        outputs = "{}"
        if d.out_params or d.out_artifacts:
            outputs = json.dumps({"parameters": d.out_params,
                                  "artifacts": {k: str(v) for k, v in d.out_artifacts.items()},
                                  "digests": d.out_digests, "urls": self.urls.get(nid, {})})
        key, comps, note = self.keys.get(nid, ("", "", ""))
        return StepRecord(self.ex.id, nid, node.kind, node.template.name, d.state, self.attempts.get(nid, 0),
                          d.exit_code, d.started, d.finished, self.messages.get(nid, ""),
                          self.log_paths.get(nid, ""), outputs, key, comps, note)

    def changed(self) -> None:
        """A state change is about to be queued: the group-commit window starts at the first one."""
        if not self.dirty and not self.dirty_attempts:
            self.dirty_since = time.monotonic()

    def drain(self) -> None:
        """Wait until the commit thread has committed everything handed to it. Call it before any
        write on the main connection, outside a transaction (the batch in flight needs the lock)."""
        if self.committer is not None:
            self.committer.drain()

    def flush(self) -> None:
        """Commit queued state changes on the main connection (inside the caller's transaction,
        if any); the caller has drained the commit thread."""
        if self.dirty or self.dirty_attempts:
            self.store.save_steps(self.rg, self.ex.id, [self._row(n) for n in self.dirty], self.dirty_attempts,
                                  self.dirty_cache)
            self.dirty.clear()
            self.dirty_attempts = []
            self.dirty_cache = []

    def group_commit(self) -> None:
        """Hand queued state changes to the commit thread (committed in order, off this thread)."""
        if self.committer is None:
            return self.flush()
        if self.dirty or self.dirty_attempts:
            self.committer.submit([self._row(n) for n in self.dirty], self.dirty_attempts, self.dirty_cache)
            self.dirty = {}
            self.dirty_attempts = []
            self.dirty_cache = []

    def settle(self, nid: str, state: StepState, message: str = "") -> None:
        """A node reached a final state: unlock its successors."""
        self.record(nid, state, message)
        if state in (StepState.FAILED, StepState.OMITTED):
            flow.scope_failure(self, nid)
        carry = nid in self.admitted and self.graph.nodes[nid].kind == ENTER
        for succ in self.graph.succ[nid]:
            self.waiting[succ] -= 1
            if self.waiting[succ] == 0:
                if carry:
                    self.admitted.add(succ)  # a call admitted before the failure starts its first steps
                heapq.heappush(self.ready, (self.graph.nodes[succ].order, succ))

    # ------------------------------------------------------------------ decisions (run.flow)
    def advance(self, nid: str) -> None:
        flow.advance(self, nid)

    def halted(self, node: Node, admit: bool = True) -> bool:
        return flow.halted(self, node, admit)

    def cut_short(self, nid: str) -> bool:
        """A delayed node leaves its wait early: a retry or a waiting call when halted; a suspended
        step only when the execution stops or passes its deadline (a failed sibling does not end
        a suspension in Argo: the DAG waits for it)."""
        node = self.graph.nodes[nid]
        if node.template.suspend is not None:
            return bool(self.stop_reason) and not node.handler
        return self.halted(node, admit=False)

    def continues(self, node: Node, kind: str = "") -> bool:
        return flow.continues(self, node, kind)

    def handled(self, nid: str, within: str = "") -> bool:
        return flow.handled(self, nid, within)

    def failure_list(self) -> list[dict[str, str]]:
        return flow.failure_list(self)

    def fail(self, nid: str, message: str, kind: str = "error") -> None:
        """``kind``: "failure" (the step ran and failed) or "error" (it could not run or finish)."""
        self.failures.append(nid)
        self.fail_kinds[nid] = "failed" if kind == "failure" else "error"
        self.settle(nid, StepState.FAILED, message)

    # ------------------------------------------------------------------ cache and resume
    def try_recorded(self, node: Node) -> bool:
        return recorded.try_recorded(self, node)

    def cache_put(self, node: Node, prep: Prepared) -> None:
        recorded.cache_put(self, node, prep)

    # ------------------------------------------------------------------ launching
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
            handle = self.executor.submit(self, node, prep, attempt)
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
        for nid in nids:
            run = self.running[nid]
            for k, side in enumerate(run.prep.sidecars):  # Argo starts sidecars with the main container
                proc = StepProcess(side)
                self.sidecars.setdefault(nid, []).append(proc)
                self.sup.start((SIDECAR, nid, k), proc)
            if run.prep.before:  # containerSet: the other containers first, in dependency order
                self.sup.start((BEFORE, nid, 0), StepProcess(run.prep.before[0][1]))
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
            with open(run.prep.log_path, "a", encoding="utf-8") as log:
                log.write(f"[orchestrator] container {name!r} ended with exit code {result.exit_code}"
                          f"{' (' + result.killed + ')' if result.killed else ''}: main did not run\n")
            return self.complete(nid, result)
        if k + 1 < len(run.prep.before):
            self.sup.start((BEFORE, nid, k + 1), StepProcess(run.prep.before[k + 1][1]))
        else:
            self.sup.start(nid, run.proc)

    # ------------------------------------------------------------------ main loop
    def run(self) -> Status:
        # Everything imported so far (jsonschema, yaml, ...) lives as long as the process:
        # freezing it keeps the cyclic GC from rescanning ~10^5 objects during every full
        # collection the step loop's allocations trigger.
        gc.freeze()
        try:
            with supervise.sigint_stops(self):  # Ctrl-C is a stop request, not an exception
                return self._run()
        except BaseException as exc:  # noqa: BLE001 - every way out is recorded
            # The store cannot be written, the disk is full, the runner was reaped while frozen,
            # or a bug: no step may go on unrecorded. Kill every tree now, then record why.
            return ending.give_up(self, exc)
        finally:
            self.beat_stop.set()
            self.sup.close()
            self.executor.shutdown()
            mlflow_endpoint.stop(self)
            if self.committer is not None:
                self.committer.close()

    def _run(self) -> Status:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Step directories are created ahead of their steps by a helper thread, in step order,
        # off the critical path: a directory costs 0.03-1 ms of (mostly kernel) time on these
        # disks, as much as a whole no-op step. A step that gets there first makes its own.
        steps_dir = self.workdir / "steps"
        steps_dir.mkdir(exist_ok=True)
        base = str(steps_dir)
        dirs = [os.path.join(base, safe_name(n.id)) for n in self.graph.leaves()]
        threading.Thread(target=self._make_dirs, args=(dirs,), name="mkdirs", daemon=True).start()
        with self.store.transaction():
            self.store.set_status(self.rg, self.ex.id, Status.PENDING)
            for nid in self.graph.nodes:
                self.record(nid, StepState.PENDING)
            self.flush()
            self.store.set_status(self.rg, self.ex.id, Status.RUNNING)
            self.store.heartbeat(self.rg, self.ex.id, os.getpid())
        self.committer = supervise.Committer(self.store, self.rg, self.ex.id)
        self.executor.open(self)  # refuses what it cannot run (e.g. a GPU plan) before any step
        if self.deadline_problem:  # never "no deadline": nothing runs
            self.stop_reason = self.deadline_problem
        supervise.start_heartbeat(self)
        locks.wait_for_workflow(self, supervise.check_stop)  # spec.synchronization: other executions first
        self.seed(handler=False)
        now = time.monotonic()
        last_metrics = last_reap = last_stop = now
        supervise.check_stop(self)
        while True:
            self.advance_ready()
            now = time.monotonic()
            while self.delayed and (self.delayed[0][0] <= now or self.cut_short(self.delayed[0][2])):
                due, order, nid = heapq.heappop(self.delayed)
                if self.graph.nodes[nid].kind == ENTER:  # a call that waits for its mutex: try again
                    heapq.heappush(self.ready, (order, nid))
                elif self.graph.nodes[nid].template.suspend is not None:  # over, stopped or cancelled
                    suspend.expired(self, nid, due, now)
                elif self.stopped:
                    self.settle(nid, StepState.STOPPED, "stopped by request while waiting to retry")
                elif self.halted(self.graph.nodes[nid], admit=False):
                    self.fail(nid, self.messages.get(nid, "") + " (retry cancelled)")
                else:
                    heapq.heappush(self.launchable, (order, nid))
            # Started at once: a step launched in the same pass as a failure that readied more nodes
            # must not wait for (or be lost behind) the next pass.
            self.start_steps(self.launch_ready())
            if self.ready:
                continue
            # Group commit: state changes are committed (fsync with synchronous=FULL) at most
            # GROUP_COMMIT seconds after they happen, overlapping with the steps just started
            # instead of delaying them. If the runner dies in between, the reaper marks the
            # execution DEAD and a resume re-runs whatever was not recorded as done.
            now = time.monotonic()
            idle = not self.running and not self.delayed and not self.launchable
            if (self.dirty or self.dirty_attempts) and (idle or now - self.dirty_since >= GROUP_COMMIT):
                self.group_commit()
            if idle:
                if self.graph.exit_handler is not None and not self.in_handler:
                    self.start_handler()
                    continue
                break
            wait = daemons.PERIOD if self.daemon_probes else 0.25
            if self.dirty or self.dirty_attempts:
                wait = max(0.0, GROUP_COMMIT - (now - self.dirty_since))
            if self.delayed:
                wait = max(0.0, min(wait, self.delayed[0][0] - now))
            for nid, result in self.sup.poll(wait):
                self.complete(nid, result)
            if self.daemon_probes:
                daemons.check(self)
            now = time.monotonic()
            supervise.check_deadlines(self, now)
            if now - last_stop >= STOP_POLL:
                last_stop = now
                supervise.check_stop(self)
                suspend.check_resume(self)
            if now - last_metrics >= METRICS_EVERY:
                last_metrics = now
                for rnid, run in list(self.running.items()):
                    ingest.ingest(self.store, self.rg, self.ex.id, f"{rnid}:{run.attempt}", run.tail)
            if self.committer is not None:
                self.committer.check()
            if self.lost:
                # Reaped while this runner was frozen (SIGSTOP, swap, a debugger), or the store
                # cannot take heartbeats: its steps must not run on unrecorded (AIRFLOW-5102).
                raise OrchestratorError(f"execution {self.ex.id}: {self.lost}; its steps were killed")
            if now - last_reap >= REAP_EVERY:
                last_reap = now
                reaper.reap(self.store, skip=self.ex.id)
        return self.finish()

    def advance_ready(self) -> None:
        """Advance every ready node. Steps start as soon as a slot is free, and while all slots are
        busy the ones that ended are collected, so a wide fan-out keeps its slots filled while the
        rest of it is being advanced (cache keys, inputs) instead of after."""
        while self.ready:
            self.advance(heapq.heappop(self.ready)[1])
            if self.launchable and len(self.running) < self.jobs:
                self.start_steps(self.launch_ready())
            elif self.ready and len(self.running) >= self.jobs:
                for nid, result in self.sup.poll(0.0):
                    self.complete(nid, result)

    def _make_dirs(self, dirs: list[str]) -> None:
        for d in dirs:
            if self.beat_stop.is_set():
                return
            try:
                os.mkdir(d)
            except FileExistsError:
                pass
            except OSError:
                return  # prepare_leaf makes the directory itself (and reports why it cannot)
            self.made_dirs.add(d)
        diskfull.ensure_reserve(self.objects.home)  # housekeeping, off the critical path
        self.objects.sweep_temp()

    def seed(self, handler: bool) -> None:
        for nid, n in self.waiting.items():
            node = self.graph.nodes[nid]
            if n == 0 and node.handler == handler:
                heapq.heappush(self.ready, (node.order, nid))

    def start_handler(self) -> None:
        self.in_handler = True
        failed = self.stop_reason or any(not self.handled(f) for f in self.failures)
        self.ctx.status = "Failed" if failed else "Succeeded"
        self.seed(handler=True)

    def finish(self) -> Status:
        main = [f for f in self.failures if not self.handled(f) and not self.graph.nodes[f].handler]
        handler = [f for f in self.failures if self.graph.nodes[f].handler]
        if self.stopped:
            status, message = Status.STOPPED, self.stop_reason
        elif self.stop_reason:
            status, message = Status.DEAD, self.stop_reason
        elif main:
            status, message = Status.DEAD, self.messages.get(main[0], f"step {main[0]!r} failed")
        elif handler:
            status, message = Status.DEAD, "onExit handler failed: " + self.messages.get(handler[0], "")
        else:
            status, message = Status.COMPLETED, ""
        daemons.stop_probes(self)
        self.drain()
        with self.store.transaction():
            self.flush()
            self.store.set_status(self.rg, self.ex.id, status, message)
        locks.release_all(self)
        # Nothing of this execution may outlive it (setsid escapees included).
        kill_tagged(self.ex.id + "-", prefix=True)
        return status
