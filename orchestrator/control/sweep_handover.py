"""A finished trial hands its slot to the next trial itself: one commit, no thread in between.

Owns: what a trial's runner calls at its end. Inside the transaction that records its terminal
status, on the trial's own connection (``Runner.on_ending``), under the engine's lock: the trial
is settled (its reports read through that connection, which sees the metric lines committed with
its end; the sampler told, so a bayesian sampler picks the next point knowing it; its row), and,
when the sweep goes on and a slot is free, the next trial (a rerun first, else the sampler's next
point) is written in the same transaction: its execution, its link to the sweep, its start
record. One fsync commits both. The lock is held until then, so nothing sees the next trial before
it is durable and ``max_concurrent_trials`` is counted as ever. The next trial's thread starts
right away: its runner prepares its first step while that transaction commits and waits at its
gate (``Runner.gate``) before starting any process. Once committed (``Runner.on_recorded``) the
finished trial's thread tells its end and its successor's start (``_tell_end``, under the lock,
so the progress shows them when and in the order they happen; the engine does not tell them
again), opens the gate and waits until the first process has started (or
``SPAWN_WAIT``) before the finished runner's teardown (the scan for escaped processes) and the
engine's announcement compete with it. When the lock is
not free in time (the engine may be waiting for the store's write lock that transaction holds),
when the sweep is ending, or when a write fails, the trial is left to the engine's collection;
when the transaction does not commit, everything done for it in memory is undone (``_abandon``).
Trials run on :class:`Slots`, threads kept for the next trial: starting one wakes an idle thread,
which runs once this transaction's commit lets go of the interpreter (a thread start would make
the finished trial wait for the new thread first). A mixin of
:class:`~orchestrator.control.sweeps.Engine`, over :class:`~orchestrator.control.sweep_trials.SweepTrials`.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from orchestrator.control.sweep_trials import INTERRUPTED, SweepTrials, _Trial, best_of
from orchestrator.store.sweep_records import SweepRecords, savepoint

if TYPE_CHECKING:
    from orchestrator.model import Status
    from orchestrator.store.sqlite import SqliteStore

LOCK_WAIT = 0.05  # seconds a trial's end waits for the engine's lock before leaving it to the engine
SPAWN_WAIT = 1.0  # seconds a finished trial's thread waits for its successor's first process


class Slots:
    """The threads trials run on, kept for the next trial (daemon threads, ended by ``close``)."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.idle = 0
        self.threads = 0

    def run(self, job: Callable[[], None]) -> None:
        """Run ``job`` on an idle thread, or on a new one when none is idle."""
        with self.lock:
            new = not self.idle
            self.idle = max(0, self.idle - 1)
            self.threads += new
        self.jobs.put(job)
        if new:
            try:
                threading.Thread(target=self._loop, name="sweep-trial", daemon=True).start()
            except RuntimeError:  # no thread to be had now: the job waits for the next free one
                with self.lock:
                    self.threads -= 1

    def reserve(self, n: int) -> None:
        """Start ``n`` idle threads now, off the path of the first hand-overs."""
        with self.lock:
            self.idle += n
            self.threads += n
        for _ in range(n):
            threading.Thread(target=self._loop, name="sweep-trial", daemon=True).start()

    def close(self) -> None:
        with self.lock:
            n, self.threads, self.idle = self.threads, 0, 0
        for _ in range(n):
            self.jobs.put(None)

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                job()
            finally:
                with self.lock:
                    self.idle += 1


class SweepHandover(SweepTrials):
    """The slot hand-over at a trial's end; a mixin of the engine."""

    def _ending(self, trial: _Trial, store: SqliteStore, status: Status, message: str) -> None:
        """In ``trial``'s end transaction, on its connection: settle it and write its successor."""
        if self.interrupting or self.reason or trial.stop_message == INTERRUPTED or self.inputs is None:
            return  # the engine collects it: it ends the sweep, or the trial runs again
        if not self.lock.acquire(timeout=LOCK_WAIT):
            return
        try:
            if self.interrupting or self.reason:
                return
            reports = self._reports(store, trial)
            args, kwargs = self._end_row(trial, reports, status.value)
            try:
                with savepoint(store):
                    SweepRecords(store).trial_ended(*args, **kwargs)
            except Exception:  # noqa: BLE001 - left to the engine's collection, which reports it
                return
            self._settle(trial, reports, status.value, message)
            trial.settled = True
            pick = self._pick()
            if pick is None:
                return
            try:
                bound = self._bind(pick[1])
                with savepoint(store):
                    successor = self._create(store, pick[0], pick[1], bound)
            except Exception:  # noqa: BLE001 - the engine starts it (and reports what fails)
                self.rerun.insert(0, pick)
                return
            self._enlist(successor)
            trial.successor = successor
            trial.locked = True  # released once committed: nothing sees the successor before
            # Last: its thread takes the interpreter when this transaction's commit lets go of it,
            # and prepares its first step during the commit.
            self._start(successor, gated=True)
        finally:
            if not trial.locked:
                self.lock.release()

    def _handed_over(self, trial: _Trial) -> None:
        """``trial``'s end is committed (on its thread): start its successor, let it spawn first."""
        trial.committed = True
        successor = trial.successor
        try:
            if trial.settled:  # told now, in order: its end, then the start of the trial taking its slot
                with self.lock:
                    self._tell_end(trial)
                    if successor is not None:
                        self._announce(successor)
        finally:
            if successor is not None and successor.gate is not None:
                successor.gate.set()  # its process may start
            if trial.locked:
                trial.locked = False
                self.lock.release()
        if successor is not None:
            successor.spawned.wait(SPAWN_WAIT)
        self._report(trial)

    def _abandon(self, trial: _Trial) -> None:
        """``trial``'s end transaction did not commit: undo its hand-over (its successor runs
        later, from the engine; the engine collects the trial from the store)."""
        if not trial.locked:
            self.lock.acquire()
        try:
            successor, trial.successor = trial.successor, None
            if successor is not None:
                eid = successor.execution.id
                self.running.pop(eid, None)
                self.trials.pop(eid, None)
                self.series.pop(eid, None)
                self.rerun.insert(0, (successor.index, successor.params))
                successor.cancelled = True  # its thread (waiting at its gate) ends, its worker back
                if successor.launch is not None:
                    self.workers.put(successor.launch[0])
                    successor.launch = None
                if successor.gate is not None:
                    successor.gate.set()
            if trial.settled:
                eid = trial.execution.id
                trial.settled = False
                trial.ended_event = None
                self.finished.discard(eid)
                self.ended[:] = [t for t in self.ended if t.execution_id != eid]
                if self.best is not None and self.best.execution_id == eid:  # its best was not stored either
                    self.best = best_of(self.ended, self.spec.objective.goal)
        finally:
            trial.locked = False
            self.lock.release()
