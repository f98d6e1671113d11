"""One execution over a compiled graph: the ready set, parallelism, deadlines, outputs, status.

Owns: the execution's status machine (UNKNOWN -> PENDING -> RUNNING -> COMPLETED/DEAD) — the
runner is its only writer besides the reaper — and every step state change, batched so that one
group commit (at most every 10 ms, fsynced) makes them durable while the processes they announce
already run; the terminal status is committed before ``run`` returns.
Leaf nodes run through :mod:`orchestrator.steps` in worker threads; virtual enter/exit nodes
settle instantly. Outputs are registered only after their step succeeded, in the same
transaction as the step's final state. Imports down only (graph, resolve, steps, artifacts,
store Protocol, model).
"""

from __future__ import annotations

import heapq
import json
import os
import queue
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from pathlib import Path

from orchestrator import ingest
from orchestrator.artifacts import ObjectStore
from orchestrator.errors import OrchestratorError
from orchestrator.graph import ENTER, EXIT, LEAF, Graph, Node
from orchestrator.model import Execution, Status, StepRecord, StepState
from orchestrator.prepare import Prepared, base_env, collect_outputs, prepare_leaf, safe_name
from orchestrator.resolve import Context, NodeData, ResolveError
from orchestrator.steps import StepProcess, StepResult
from orchestrator.store import Store

EventSink = Callable[[str, StepState, str, float], None]
TAIL_LINES = 5
METRICS_EVERY = 2.0
HEARTBEAT_EVERY = 10.0
GROUP_COMMIT = 0.01


def _tail(path: str, lines: int = TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


class Runner:
    """Runs one execution to a terminal status. Use from a single thread."""

    def __init__(self, store: Store, objects: ObjectStore, graph: Graph, execution: Execution, *,
                 params: dict[str, str], bound: dict[str, Path], jobs: int = 1,
                 on_event: EventSink | None = None, sandbox: tuple[bool, str] = (False, "")) -> None:
        self.store, self.objects, self.graph, self.ex = store, objects, graph, execution
        self.rg = execution.resource_group
        self.jobs = max(1, min(jobs, graph.spec.parallelism or jobs))
        self.on_event = on_event or (lambda *_a: None)
        self.sandbox = sandbox
        self.workdir = Path(execution.workdir)
        self.ctx = Context(graph, execution.id, dict(params), dict(bound),
                           {nid: NodeData() for nid in graph.nodes})
        self.preds = {nid: list(graph.dag.predecessors(nid)) for nid in graph.nodes}
        self.waiting = {nid: len(p) for nid, p in self.preds.items()}
        self.ready: list[tuple[int, str]] = []
        self.launchable: list[tuple[int, str]] = []
        self.running: dict[str, tuple[StepProcess, Prepared, ingest.Tail, float | None]] = {}
        self.scope_running: dict[str, int] = {}
        self.results: queue.Queue[tuple[str, StepResult]] = queue.Queue()
        self.dirty: dict[str, StepRecord] = {}
        self.dirty_since = 0.0
        self.messages: dict[str, str] = {}
        self.log_paths: dict[str, str] = {}
        self.global_outputs: dict[str, str] = {}
        self.base_env = base_env()
        self.pool: ThreadPoolExecutor | None = None
        self.failures: list[str] = []
        self.fail_fast = False
        self.t0 = time.monotonic()
        self.deadline = (self.t0 + graph.spec.active_deadline_seconds
                         if graph.spec.active_deadline_seconds else None)
        self.stop_reason = ""

    # ------------------------------------------------------------------ bookkeeping
    def record(self, nid: str, state: StepState, message: str = "") -> None:
        node = self.graph.nodes[nid]
        d = self.ctx.data[nid]
        d.state = state
        now = time.time()
        if state == StepState.RUNNING:
            d.started = now
        elif state.done:
            d.finished = now
            d.started = d.started or now
        if message:
            self.messages[nid] = message
        if not self.dirty:
            self.dirty_since = time.monotonic()
        outputs = "{}"
        if d.out_params or d.out_artifacts:
            outputs = json.dumps({"parameters": d.out_params,
                                  "artifacts": {k: str(v) for k, v in d.out_artifacts.items()}})
        self.dirty[nid] = StepRecord(self.ex.id, nid, node.kind, node.template.name, state, 1, d.exit_code,
                                     d.started, d.finished, self.messages.get(nid, ""),
                                     self.log_paths.get(nid, ""), outputs)
        if node.kind == LEAF and state != StepState.PENDING:
            self.on_event(nid, state, message, time.monotonic() - self.t0)

    def flush(self) -> None:
        if self.dirty:
            self.store.save_steps(self.rg, self.ex.id, list(self.dirty.values()))
            self.dirty.clear()

    def settle(self, nid: str, state: StepState, message: str = "") -> None:
        """A node reached a final state: unlock its successors."""
        self.record(nid, state, message)
        for succ in self.graph.dag.successors(nid):
            self.waiting[succ] -= 1
            if self.waiting[succ] == 0:
                heapq.heappush(self.ready, (self.graph.nodes[succ].order, succ))

    # ------------------------------------------------------------------ decisions
    def advance(self, nid: str) -> None:
        node = self.graph.nodes[nid]
        d = self.ctx.data
        if node.kind == EXIT:
            enter_state = d[node.partner].state
            if enter_state in (StepState.SKIPPED, StepState.OMITTED):
                return self.settle(nid, enter_state)
            failed = any(node.partner in self.scopes(self.graph.nodes[f]) and not self.handled(f)
                         for f in self.failures)
            return self.settle(nid, StepState.FAILED if failed else StepState.SUCCEEDED)
        if node.scope and d[node.scope].state in (StepState.SKIPPED, StepState.OMITTED):
            return self.settle(nid, d[node.scope].state)
        preds = [p for p in self.preds[nid] if p != node.scope]
        try:
            if not self.ctx.depends_ok(node, preds) or (self.fail_fast and node.kind == LEAF):
                return self.settle(nid, StepState.OMITTED)
            if not self.ctx.when(node):
                return self.settle(nid, StepState.SKIPPED, "when condition is false")
            if node.kind == ENTER:
                d[nid].params, d[nid].in_artifacts = self.ctx.call_inputs(node)
                return self.settle(nid, StepState.SUCCEEDED)
        except (ResolveError, OrchestratorError) as exc:
            return self.fail(nid, str(exc))
        heapq.heappush(self.launchable, (node.order, nid))

    def fail(self, nid: str, message: str) -> None:
        self.failures.append(nid)
        if not self.handled(nid):
            self.fail_fast = True
        self.settle(nid, StepState.FAILED, message)

    def handled(self, nid: str) -> bool:
        """A failure is handled when a successor's ``depends`` asks for it explicitly."""
        node = self.graph.nodes[nid]
        name = node.call.name if node.call else nid
        for succ in self.graph.dag.successors(nid):
            call = self.graph.nodes[succ].call
            if call and call.depends and any(
                    f"{name}.{r}" in call.depends for r in ("Failed", "Completed", "Errored", "AnySucceeded")):
                return True
        return False

    # ------------------------------------------------------------------ launching
    def scopes(self, node: Node) -> list[str]:
        out, scope = [""], node.scope
        while scope:
            out.append(scope)
            scope = self.graph.nodes[scope].scope
        return out

    def scope_limit(self, scope: str) -> int | None:
        t = self.graph.nodes[scope].template if scope else self.graph.root_template
        return t.parallelism

    def can_launch(self, node: Node) -> bool:
        if len(self.running) >= self.jobs:
            return False
        for s in self.scopes(node):
            limit = self.scope_limit(s)
            if limit is not None and self.scope_running.get(s, 0) >= limit:
                return False
        return True

    def launch_ready(self) -> list[str]:
        started: list[str] = []
        held: list[tuple[int, str]] = []
        while self.launchable and len(self.running) < self.jobs:
            order, nid = heapq.heappop(self.launchable)
            node = self.graph.nodes[nid]
            if self.fail_fast or self.stop_reason:
                self.settle(nid, StepState.OMITTED)
                continue
            if not self.can_launch(node):
                held.append((order, nid))
                continue
            try:
                prep = prepare_leaf(self, node)
            except (ResolveError, OrchestratorError, OSError) as exc:
                self.fail(nid, f"cannot prepare step: {exc}")
                continue
            proc = StepProcess(prep.spec)
            self.log_paths[nid] = prep.log_path
            limit = node.template.active_deadline_seconds or node.template.timeout
            self.running[nid] = (proc, prep, ingest.Tail(prep.tracking_path),
                                 time.monotonic() + limit if limit else None)
            for s in self.scopes(node):
                self.scope_running[s] = self.scope_running.get(s, 0) + 1
            self.record(nid, StepState.RUNNING)
            started.append(nid)
        for item in held:
            heapq.heappush(self.launchable, item)
        return started

    def start_threads(self, nids: list[str]) -> None:
        if nids and self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="step")
        for nid in nids:
            proc = self.running[nid][0]
            assert self.pool is not None
            self.pool.submit(self._work, nid, proc)

    def _work(self, nid: str, proc: StepProcess) -> None:
        try:
            result = proc.run()
        except BaseException as exc:  # noqa: BLE001 - a crash here must still settle the node
            now = time.time()
            result = StepResult(-1, now, now, error=f"runner error: {type(exc).__name__}: {exc}")
        self.results.put((nid, result))

    # ------------------------------------------------------------------ completion
    def complete(self, nid: str, result: StepResult) -> None:
        proc, prep, tail, _deadline = self.running.pop(nid)
        node = self.graph.nodes[nid]
        for s in self.scopes(node):
            self.scope_running[s] -= 1
        d = self.ctx.data[nid]
        d.exit_code = result.exit_code
        ingest.ingest(self.store, self.rg, self.ex.id, f"{nid}:1", tail)
        if result.exit_code == 0 and not result.killed:
            note = f"{tail.rejected} invalid tracking lines ignored" if tail.rejected else ""
            if not (node.template.output_artifacts or node.template.output_parameters):
                return self.settle(nid, StepState.SUCCEEDED, note)
            try:
                # Blobs are stored first; the artifact rows and the step's final state then commit
                # in one transaction, so a failure never leaves a half-registered output.
                with self.store.transaction():
                    collect_outputs(self, node, prep)
                    self.settle(nid, StepState.SUCCEEDED, note)
                    self.flush()
            except (OrchestratorError, OSError) as exc:
                self.ctx.data[nid].out_artifacts.clear()
                self.fail(nid, f"step {nid!r} succeeded but its outputs failed: {exc}")
            return
        if result.killed:
            msg = f"step {nid!r} was killed: {result.killed}"
        elif result.error:
            msg = f"step {nid!r} failed: {result.error}"
        else:
            msg = f"step {nid!r} failed with exit code {result.exit_code}"
        last = _tail(prep.log_path)
        self.fail(nid, msg + (f"; last log lines:\n{last}" if last else ""))

    # ------------------------------------------------------------------ main loop
    def run(self) -> Status:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Step directories are created up front, in one burst before the first fsync: created
        # one by one between group commits, each mkdir waits behind the filesystem journal.
        steps_dir = self.workdir / "steps"
        steps_dir.mkdir(exist_ok=True)
        for node in self.graph.leaves():
            (steps_dir / safe_name(node.id)).mkdir(exist_ok=True)
        with self.store.transaction():
            self.store.set_status(self.rg, self.ex.id, Status.PENDING)
            for nid in self.graph.nodes:
                self.record(nid, StepState.PENDING)
            self.flush()
            self.store.set_status(self.rg, self.ex.id, Status.RUNNING)
            self.store.heartbeat(self.rg, self.ex.id, os.getpid())
        for nid, n in self.waiting.items():
            if n == 0:
                heapq.heappush(self.ready, (self.graph.nodes[nid].order, nid))
        last_metrics = last_beat = time.monotonic()
        while True:
            while self.ready:
                self.advance(heapq.heappop(self.ready)[1])
            started = self.launch_ready()
            if self.ready:
                continue
            self.start_threads(started)
            # Group commit: state changes are committed (fsync with synchronous=FULL) at most
            # GROUP_COMMIT seconds after they happen, overlapping with the steps just started
            # instead of delaying them. If the runner dies in between, the reaper marks the
            # execution DEAD and a resume re-runs whatever was not recorded as done.
            now = time.monotonic()
            if self.dirty and (not self.running or now - self.dirty_since >= GROUP_COMMIT):
                self.flush()
            if not self.running:
                break
            wait = 0.25 if not self.dirty else max(0.0, GROUP_COMMIT - (now - self.dirty_since))
            try:
                item = self.results.get(timeout=wait)
            except queue.Empty:
                item = None
            now = time.monotonic()
            if item is not None:
                self.complete(*item)
                while True:
                    try:
                        self.complete(*self.results.get_nowait())
                    except queue.Empty:
                        break
            self.check_deadlines(now)
            if now - last_metrics >= METRICS_EVERY:
                last_metrics = now
                for rnid, (_p, _prep, tail, _d) in list(self.running.items()):
                    ingest.ingest(self.store, self.rg, self.ex.id, f"{rnid}:1", tail)
            if now - last_beat >= HEARTBEAT_EVERY:
                last_beat = now
                self.store.heartbeat(self.rg, self.ex.id, os.getpid())
        return self.finish()

    def check_deadlines(self, now: float) -> None:
        if self.deadline and now >= self.deadline and not self.stop_reason:
            self.stop_reason = (f"workflow activeDeadlineSeconds ({self.graph.spec.active_deadline_seconds:g} s) "
                                "exceeded")
            self.fail_fast = True
            for proc, *_ in self.running.values():
                proc.kill(self.stop_reason, grace=2.0)
        for nid, (proc, _prep, _tail, deadline) in self.running.items():
            if deadline and now >= deadline and not proc.killed:
                t = self.graph.nodes[nid].template
                which = "activeDeadlineSeconds" if t.active_deadline_seconds else "timeout"
                proc.kill(f"template {which} ({(t.active_deadline_seconds or t.timeout):g} s) exceeded", grace=2.0)

    def finish(self) -> Status:
        unhandled = [f for f in self.failures if not self.handled(f)]
        if self.stop_reason:
            status, message = Status.DEAD, self.stop_reason
        elif unhandled:
            first = unhandled[0]
            status, message = Status.DEAD, self.messages.get(first, f"step {first!r} failed")
        else:
            status, message = Status.COMPLETED, ""
        with self.store.transaction():
            self.flush()
            self.store.set_status(self.rg, self.ex.id, status, message)
        if self.pool is not None:
            self.pool.shutdown(wait=False)
        return status


def new_token() -> str:
    return secrets.token_hex(8)
