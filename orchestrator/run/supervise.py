"""Supervision of a running execution: heartbeats, stop requests, deadlines, killing steps.

Owns: the heartbeat thread (its own store connection, so a busy main loop is not taken for a dead
runner; it notices when the reaper ended the execution), the commit thread (group commits of step
states on their own connection, so the main loop never waits for an fsync while steps run),
polling ``targetStatus`` for a stop (RUNNING -> STOPPING, every step's process tree killed), Ctrl-C
(SIGINT) as the same stop, workflow and template deadlines, and the kill grace. Functions over the
runner's state; called only by :mod:`orchestrator.run.runner`.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from orchestrator.errors import Conflict, OrchestratorError, StoreError
from orchestrator.model import Attempt, Status, StepRecord, StepState
from orchestrator.run import diskfull, kept, reaper
from orchestrator.store import Store

KILL_GRACE = float(os.environ.get("ORCHESTRATOR_KILL_GRACE", "3"))
INTERRUPTED = "stopped: interrupted by SIGINT (Ctrl-C)"


def start_heartbeat(r: Any) -> None:
    """Heartbeats come from their own thread and connection, so a main loop busy copying a
    large artifact is not mistaken for a dead runner; a frozen process stops both. The connection
    is opened when the first beat is due (the start already recorded one): an execution shorter
    than the interval never opens it."""
    def beat() -> None:
        if r.beat_stop.wait(reaper.HEARTBEAT_INTERVAL):
            return
        try:
            store = r.store.spare()
        except StoreError as exc:
            r.lost = f"store not writable for heartbeats: {exc.message}"
            return
        healthy = False
        try:
            while True:
                if store.get_execution(r.rg, r.ex.id).status.terminal:
                    r.lost = "the execution was ended by the reaper while this runner was unresponsive"
                    return
                store.heartbeat(r.rg, r.ex.id, os.getpid())
                if r.beat_stop.wait(reaper.HEARTBEAT_INTERVAL):
                    healthy = True
                    return
        except Exception as exc:  # noqa: BLE001 - a raw sqlite3 error must not end heartbeats silently
            r.lost = (diskfull.PREFIX + "recording the heartbeat" if diskfull.no_space(exc)
                      else f"heartbeat failed: {exc}")
        finally:
            if healthy:
                r.store.give_back(store)  # the next runner on this service beats with it
            else:
                store.close()

    kept.run(beat)  # a kept thread: no thread start per execution


class Committer:
    """Writes batches of step states (``save_steps``) in order from its own thread and connection.

    The main loop hands a batch over instead of blocking on its commit (an fsync with
    ``synchronous=FULL``). ``drain`` waits until every batch handed over is committed; call it
    before writing on the main connection (never inside a transaction there: the batch in flight
    needs the write lock). A failed batch's error is raised by the next ``check``/``drain``.
    """

    def __init__(self, store: Store, rg: str, execution_id: str) -> None:
        self.rg, self.ex_id = rg, execution_id
        self.q: queue.SimpleQueue[tuple[Sequence[StepRecord], Sequence[Attempt], Sequence[tuple[str, str, str]],
                                        Sequence[tuple[str, int, Any]]] | None] = queue.SimpleQueue()
        self.cond = threading.Condition()
        self.pending = 0
        self.error: BaseException | None = None
        self.thread = kept.run(self._loop, store)  # a kept thread: no thread start per execution

    def submit(self, steps: Sequence[StepRecord], attempts: Sequence[Attempt],
               cache: Sequence[tuple[str, str, str]], tracked: Sequence[tuple[str, int, Any]] = ()) -> None:
        self.check()
        with self.cond:
            self.pending += 1
        self.q.put((steps, attempts, cache, tracked))

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def drain(self) -> None:
        with self.cond:
            while self.pending:
                self.cond.wait()
        self.check()

    def close(self) -> None:
        self.q.put(None)

    def _loop(self, main_store: Store) -> None:
        store: Store | None = None  # opened with the first batch: a run that never hands one over never opens it
        try:
            while True:
                batch = self.q.get()
                if batch is None:
                    return
                if store is None and self.error is None:
                    try:
                        store = main_store.spare()
                    except (StoreError, OrchestratorError) as exc:
                        self.error = exc
                try:
                    if store is not None and self.error is None:
                        store.save_steps(self.rg, self.ex_id, *batch)
                except Exception as exc:  # noqa: BLE001 - surfaces in the main loop as a store failure
                    self.error = exc if isinstance(exc, OrchestratorError) else StoreError(
                        f"cannot record step states: {type(exc).__name__}: {exc}")
                    if diskfull.no_space(exc):
                        self.error = diskfull.DiskFull(diskfull.PREFIX + "recording step states")
                        self.error.__cause__ = exc
                finally:
                    with self.cond:
                        self.pending -= 1
                        self.cond.notify_all()
        finally:
            if store is not None and self.error is None:
                main_store.give_back(store)  # the next runner on this service commits with it
            elif store is not None:
                store.close()


def kill_all(r: Any, reason: str, grace: float = KILL_GRACE) -> None:
    for run in r.running.values():
        run.proc.kill(reason, grace=grace)


def kill_now(r: Any, reason: str, grace: float = 0.5) -> None:
    """Before the runner gives up (store failure, lost, interrupted): SIGTERM every step tree,
    wait up to ``grace``, then SIGKILL what is left — synchronously, because the process is about
    to exit and a delayed kill in a daemon thread would never happen."""
    import time

    from orchestrator.run.steps import kill_tagged

    kill_all(r, reason, grace=grace)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(
            run.proc.proc is not None and run.proc.proc.poll() is None for run in r.running.values()):
        time.sleep(0.05)
    for run in r.running.values():
        run.proc.force_kill()
    kill_tagged(r.ex.id + "-", prefix=True)  # descendants that left the trees (setsid)


def check_stop(r: Any) -> None:
    """A stop request (``targetStatus`` STOPPED, set by any process, or Ctrl-C here): STOPPING, every
    step tree gets SIGTERM and the kill grace; the onExit handler runs afterwards. A second Ctrl-C
    kills every tree at once, the handler's too."""
    if r.interrupts:
        interrupted(r)
    if r.stopped or r.in_handler or getattr(r, "gate", None) is not None:
        return  # (a gated runner's start is not committed yet: no stop request can exist)
    if r.store.target_status(r.rg, r.ex.id) != "STOPPED":
        return
    if _complete(r):
        return  # its work all ended well before the request landed: it completes (nothing left to stop)
    _stopping(r, "stopped by request")


def _complete(r: Any) -> bool:
    """Every step ran and succeeded, nothing is running, waiting or left (no onExit handler to
    run): the execution ends COMPLETED on the runner's next turn. A stop request that lands now
    (e.g. an early-termination policy's, decided on reports the process logged just before it
    exited) finds nothing to stop."""
    if r.running or r.ready or r.delayed or r.launchable or r.failures or r.stop_reason or r.armed \
            or r.graph.exit_handler is not None:
        return False
    data = r.ctx.data
    return all(nid in data and data[nid].state.done and data[nid].state != StepState.STOPPED for nid in r.graph.nodes)


def _stopping(r: Any, reason: str, kill: bool = True) -> None:
    r.stopped = True
    r.stop_reason = r.stop_reason or reason
    r.drain()
    r.flush()
    r.store.set_status(r.rg, r.ex.id, Status.STOPPING)
    if kill:
        kill_all(r, r.stop_reason)


def interrupted(r: Any) -> None:
    """Ctrl-C (SIGINT) arrived ``r.interrupts`` times: the first is what ``executions stop`` does
    (``targetStatus`` STOPPED is recorded the same way), also while the onExit handler runs (the
    handler then finishes, and the execution ends STOPPED); the second kills everything now."""
    if not r.stopped:
        r.drain()
        try:
            r.store.request_stop(r.rg, r.ex.id)
        except Conflict:  # already terminal (ended elsewhere): the loop notices it
            return
        _stopping(r, INTERRUPTED, kill=not r.in_handler)
    if r.interrupts > 1 and not r.forced:
        r.forced = True
        for run in r.running.values():
            run.proc.kill_now(INTERRUPTED + " twice: killed at once")


@contextmanager
def sigint_stops(r: Any) -> Iterator[None]:
    """While the runner runs on the main thread, SIGINT counts in ``r.interrupts`` (the loop acts on
    it within a stop poll) instead of raising KeyboardInterrupt wherever the loop happens to be —
    between a step's end and its record, inside a transaction. An ignored SIGINT stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):
        yield
        return

    def count(_signum: int, _frame: Any) -> None:
        r.interrupts += 1

    signal.signal(signal.SIGINT, count)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def check_deadlines(r: Any, now: float) -> None:
    if r.deadline and now >= r.deadline and not r.stop_reason and not r.in_handler:
        r.stop_reason = f"workflow activeDeadlineSeconds ({r.deadline_seconds:g} s) exceeded"
        kill_all(r, r.stop_reason)
    for nid, run in r.running.items():
        if run.deadline and now >= run.deadline and not run.proc.killed:
            run.proc.kill(f"{run.why or 'template deadline'} exceeded", grace=KILL_GRACE)
