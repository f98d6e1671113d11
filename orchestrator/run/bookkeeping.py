"""The runner's record of its steps' states and the group commit that makes them durable.

Owns: the in-memory state change of a node (``record``, ``settle``, ``fail``: unlocking its
successors, Argo's failFast bookkeeping through :mod:`orchestrator.run.flow`), the step row built
when it is committed, the tracking-file lines committed with a step's end, and handing the
queued changes to the main connection (``flush``) or the commit thread (``group_commit``). A mixin
of :class:`~orchestrator.run.runner.Runner` (uses its state, set in its ``__init__``).
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Callable
from typing import Any

from orchestrator.model import Attempt, Execution, StepRecord, StepState
from orchestrator.plan.graph import ENTER, LEAF, Graph
from orchestrator.plan.resolve import Context
from orchestrator.run import flow, ingest, lifecycle, supervise
from orchestrator.store import Store


GROUP = 0.01  # seconds a state change waits at most for its group commit
ANNOUNCE = 0.25  # ... when the changes only announce started steps


class StepBook:
    """Records node states and commits them in groups; a mixin of the runner."""

    store: Store
    graph: Graph
    ex: Execution
    rg: str
    ctx: Context
    t0: float
    on_event: Callable[[str, StepState, str, float], None]
    waiting: dict[str, int]
    ready: list[tuple[int, str]]
    admitted: set[str]
    dirty: dict[str, None]
    dirty_attempts: list[Attempt]
    dirty_cache: list[tuple[str, str, str]]
    dirty_tracked: list[tuple[str, int, list[tuple[int, str, Any]]]]
    dirty_since: float
    dirty_urgent: bool  # a queued change is more than a step's start (``commit_window``)
    messages: dict[str, str]
    armed: dict[str, None]
    log_paths: dict[str, str]
    attempts: dict[str, int]
    keys: dict[str, tuple[str, str, str]]
    urls: dict[str, dict[str, str]]
    failures: list[str]
    fail_kinds: dict[str, str]
    committer: supervise.Committer | None
    commit_thread: bool

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
        if state != StepState.RUNNING:
            self.dirty_urgent = True
        self.dirty[nid] = None  # the row is built when it is committed: only the last state counts
        if node.kind == LEAF and state != StepState.PENDING:
            self.on_event(nid, state, message, time.monotonic() - self.t0)
        if self.armed:  # a lifecycle hook's expression may have become true
            lifecycle.check(self, changed=nid)

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
        if not self.dirty and not self.dirty_attempts and not self.dirty_tracked:
            self.dirty_since = time.monotonic()

    def commit_window(self) -> float:
        """How long queued changes may wait for their group commit: ``ANNOUNCE`` when they only
        announce steps that started (nothing a resume or a reader acting on a step's end needs; a
        short step's start then goes with its end, one commit instead of two), else ``GROUP``."""
        if self.dirty_urgent or self.dirty_attempts or self.dirty_tracked or self.dirty_cache:
            return GROUP
        return ANNOUNCE

    def track_end(self, nid: str, attempt: int, tail: ingest.Tail) -> None:
        """A step ended: the last lines of its tracking file are committed with its final state
        (one transaction: a finished step never shows without its last metrics)."""
        got = ingest.read(tail, self.ex.id)
        if got is None:
            return
        end, items = got
        if items:
            self.changed()
            self.dirty_tracked.append((f"{nid}:{attempt}", end, items))
        tail.offset = end

    def drain(self) -> None:
        """Wait until the commit thread has committed everything handed to it. Call it before any
        write on the main connection, outside a transaction (the batch in flight needs the lock)."""
        if self.committer is not None:
            self.committer.drain()

    def flush(self, store: Store | None = None) -> None:
        """Commit queued state changes on the main connection (or ``store``), inside the caller's
        transaction, if any; the caller has drained the commit thread."""
        if self.dirty or self.dirty_attempts or self.dirty_tracked:
            (store or self.store).save_steps(self.rg, self.ex.id, [self._row(n) for n in self.dirty],
                                             self.dirty_attempts, self.dirty_cache, self.dirty_tracked)
            self.dirty.clear()
            self.dirty_urgent = False
            self.dirty_attempts = []
            self.dirty_cache = []
            self.dirty_tracked = []

    def group_commit(self) -> None:
        """Hand queued state changes to the commit thread (committed in order, off this thread),
        started with the first batch (after the first steps were, not before them)."""
        if self.committer is None:
            if not self.commit_thread:
                return self.flush()
            self.committer = supervise.Committer(self.store, self.rg, self.ex.id)
        if self.dirty or self.dirty_attempts or self.dirty_tracked:
            self.committer.submit([self._row(n) for n in self.dirty], self.dirty_attempts, self.dirty_cache,
                                  self.dirty_tracked)
            self.dirty = {}
            self.dirty_urgent = False
            self.dirty_attempts = []
            self.dirty_cache = []
            self.dirty_tracked = []

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

    def fail(self, nid: str, message: str, kind: str = "error") -> None:
        """``kind``: "failure" (the step ran and failed) or "error" (it could not run or finish)."""
        self.failures.append(nid)
        self.fail_kinds[nid] = "failed" if kind == "failure" else "error"
        self.settle(nid, StepState.FAILED, message)
