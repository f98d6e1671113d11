"""One execution over a compiled graph: ready set, parallelism, retries, deadlines, stop, cache.

Owns: the execution's status machine (UNKNOWN -> PENDING -> RUNNING -> COMPLETED/DEAD, and
STOPPING -> STOPPED) — the runner is its only writer besides the reaper — and every step state
change. Changes are group-committed (at most every 10 ms, fsynced; steps' starts alone wait up
to 0.25 s, so a short step's start goes with its end) while the processes they announce already run; the terminal status is committed before ``run`` returns. Leaf nodes run
through :mod:`orchestrator.run.steps`, watched from this thread by one epoll-based supervisor (no
thread per step); enter/exit nodes settle instantly; a leaf
whose cache key (or resume record) matches is settled from recorded outputs without running.
The onExit handler runs after everything else; Ctrl-C is a stop request. Imports down only.
Parts live beside it: node states and the group commit in :mod:`orchestrator.run.bookkeeping`,
launching and completion routing in :mod:`orchestrator.run.launching` (mixins), decisions in
:mod:`orchestrator.run.flow`, a step's end in :mod:`orchestrator.run.outcome`.
"""

from __future__ import annotations

import gc
import heapq
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.model import Attempt, Execution, Status, StepState
from orchestrator.plan.graph import ENTER, Graph, Node
from orchestrator.plan.resolve import Context, NodeData
from orchestrator.run import (
    callretry,
    daemons,
    ending,
    flow,
    ingest,
    kept,
    lifecycle,
    limits,
    locks,
    mlflow_endpoint,
    outcome,
    reaper,
    recorded,
    stepdir,
    supervise,
    suspend,
)
from orchestrator.run.launching import BEFORE, SIDECAR, Launching  # noqa: F401 - SIDECAR, BEFORE re-exported
from orchestrator.run.outcome import Running
from orchestrator.run.prepare import Prepared, base_env, safe_name
from orchestrator.run.executor import Executor, LocalExecutor, choose
from orchestrator.run.steps import PidMark, StepProcess, kill_tagged, pid_mark
from orchestrator.run.watch import Supervisor
from orchestrator.store import Store
from orchestrator.store.artifacts import ObjectStore

EventSink = Callable[[str, StepState, str, float], None]
METRICS_EVERY = 2.0
STOP_POLL = 0.2
REAP_EVERY = 30.0


class Runner(Launching):
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
        self.armed: dict[str, None] = {}  # lifecycle hooks waiting for their expression (run.lifecycle)
        self.hooks_fired: set[str] = set()
        self.hook_checking = False
        self.hook_index = lifecycle.HookIndex()  # armed hooks' parsed expressions, by the nodes they read
        self.static_nodes = set(graph.nodes)  # compiled before the run (run.callretry removes the others)
        self.retrying: dict[str, str] = {}  # steps/dag calls waiting to run again: ENTER -> EXIT
        self.retried_inner: set[str] = set()  # steps of a retried call: run again, never from the cache
        self.attempt_base: dict[str, int] = {}  # a step's attempts before its call's current attempt
        self.root_attempt = 1  # the entrypoint's retryStrategy (run.callretry): its attempt, its next start
        self.root_retry_at: float | None = None
        self.running: dict[str, Running] = {}
        self.scope_running: dict[str, int] = {}
        self.sup = Supervisor(spawners=self.jobs if self.jobs > 1 else 0)
        self.dirty: dict[str, None] = {}  # nodes whose record changed since the last commit (ordered)
        self.dirty_attempts: list[Attempt] = []
        self.dirty_cache: list[tuple[str, str, str]] = []  # (key, node id, outputs JSON)
        self.dirty_tracked: list[tuple[str, int, list[tuple[int, str, Any]]]] = []  # steps' last metric lines
        self.dirty_since = 0.0
        self.dirty_urgent = False
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
        self.commit_thread = False
        self.made_dirs: set[str] = set()
        self.begun = False  # the start is recorded (begin)
        # Called once the terminal status is committed, before the teardown (locks, the scan for
        # escaped processes, threads): a sweep starts its next trial while this one is torn down.
        self.on_recorded: Callable[[Status], None] | None = None
        # Called inside the transaction that records the terminal status (after it, on this
        # runner's connection): a sweep records its next trial's start with this end (one fsync).
        self.on_ending: Callable[[Store, Status, str], None] | None = None
        # Called once, when the first steps are started and the loop waits for the first time.
        self.on_started: Callable[[], None] | None = None
        self.deferred: list[Callable[[], None]] = []  # thread starts kept off the first steps' path
        # Set by a creator that starts this runner while its start's transaction commits: no process
        # starts and none of its rows is read until it returns (``act``); its writes wait for that
        # transaction's write lock anyway. False: it did not commit.
        self.gate: Callable[[], bool] | None = None
        self.up = False  # the loop has waited once: the first steps run (started_up)
        self.helper: kept.Job | None = None  # makes step directories ahead, then housekeeping
        # Taken when it runs, before any of its steps starts: the scan for escaped processes at its
        # end reads only the processes created since (when the PIDs show which), not every process.
        self.pid_mark: PidMark | None = None

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

    # ------------------------------------------------------------------ cache and resume
    def try_recorded(self, node: Node) -> bool:
        return recorded.try_recorded(self, node)

    def cache_put(self, node: Node, prep: Prepared) -> None:
        recorded.cache_put(self, node, prep)

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
            if self.helper is not None:  # its housekeeping runs once per execution, however short
                if not self.helper.started:
                    self.helper.start()
                self.helper.join()
            self.sup.close()
            self.executor.shutdown()
            mlflow_endpoint.stop(self)
            if self.committer is not None:
                self.committer.close()

    def _run(self) -> Status:
        self.pid_mark = pid_mark()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Step directories are created ahead of their steps by a helper thread, in step order,
        # off the critical path: a directory costs 0.03-1 ms of (mostly kernel) time on these
        # disks, as much as a whole no-op step. A step that gets there first makes its own. It
        # starts once the first steps run: a thread start costs them a round trip (0.3-1 ms).
        steps_dir = self.workdir / "steps"
        steps_dir.mkdir(exist_ok=True)
        base = str(steps_dir)
        dirs = [os.path.join(base, safe_name(n.id)) for n in self.graph.leaves()]
        self.helper = kept.Job(self._make_dirs, dirs)
        self.deferred.append(self.helper.start)
        if not self.begun:
            self.begin()
        self.commit_thread = True  # group commits go to a commit thread from now on (group_commit)
        if not isinstance(self.executor, LocalExecutor):
            self.act()  # another executor may act on the step's behalf as soon as it is submitted
        daemons.refuse_exec_probes(self)  # Ray: an exec probe could not run with the step's privileges
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
            # ``commit_window`` (10 ms; 0.25 s for steps' starts alone) after they happen,
            # overlapping with the steps just started instead of delaying them. If the runner dies in between, the reaper marks the
            # execution DEAD and a resume re-runs whatever was not recorded as done.
            now = time.monotonic()
            idle = not self.running and not self.delayed and not self.launchable
            # The last changes go with the terminal status, in finish's one transaction.
            done = idle and (self.graph.exit_handler is None or self.in_handler)
            dirty = self.dirty or self.dirty_attempts or self.dirty_tracked
            if dirty and not done and (idle or now - self.dirty_since >= self.commit_window()):
                self.group_commit()
            if idle:
                if callretry.root_again(self):  # the entrypoint's retryStrategy: it runs again
                    continue
                if lifecycle.at_end(self):  # the workflow's hooks see the final status first
                    continue
                if self.graph.exit_handler is not None and not self.in_handler:
                    self.start_handler()
                    continue
                break
            wait = daemons.PERIOD if self.daemon_probes else 0.25
            if self.dirty or self.dirty_attempts or self.dirty_tracked:
                wait = max(0.0, self.commit_window() - (now - self.dirty_since))
            if self.delayed:
                wait = max(0.0, min(wait, self.delayed[0][0] - now))
            if not self.up:
                self.started_up()
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

    def act(self) -> None:
        """Wait for ``gate`` (the start's commit) before the first process starts."""
        gate, self.gate = self.gate, None
        if gate is not None and not gate():
            raise OrchestratorError(f"execution {self.ex.id}: its start was not recorded; nothing ran")

    def started_up(self) -> None:
        """The first steps run (the loop waits for the first time): start the helper threads
        kept off their path, then tell ``on_started``."""
        self.up = True
        deferred, self.deferred = self.deferred, []
        for start in deferred:
            start()
        started, self.on_started = self.on_started, None
        if started is not None:
            started()

    def _make_dirs(self, dirs: list[str]) -> None:
        stepdir.make_ahead(dirs, self.made_dirs, self.beat_stop, self.objects)

    def begin(self, store: Store | None = None) -> None:
        """Record the start in one transaction: PENDING, every node PENDING, RUNNING, the first
        heartbeat. ``run`` does it unless it was done: a creator that commits the execution itself
        may call it first, on its own connection inside its own transaction (a sweep commits a
        trial's execution, its link to the sweep and its start with one fsync)."""
        db = store or self.store
        with db.transaction():
            db.set_status(self.rg, self.ex.id, Status.PENDING)
            for nid in self.graph.nodes:
                self.record(nid, StepState.PENDING)
            self.flush(db)
            db.set_status(self.rg, self.ex.id, Status.RUNNING)
            db.heartbeat(self.rg, self.ex.id, os.getpid())
        self.begun = True

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
            if self.on_ending is not None:
                try:
                    self.on_ending(self.store, status, message)
                except Exception:  # noqa: BLE001, S110 - the caller's problem never changes this execution's end
                    pass
        if self.on_recorded is not None:  # the outcome is in the store: the caller may go on meanwhile
            try:
                self.on_recorded(status)
            except Exception:  # noqa: BLE001, S110 - the caller's problem never changes this execution's end
                pass
        locks.release_all(self)
        # Nothing of this execution may outlive it (setsid escapees included).
        kill_tagged(self.ex.id + "-", prefix=True, since=self.pid_mark)
        return status
