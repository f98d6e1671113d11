"""The durable sweep engine: run a stored sweep's trials, resume it after a crash.

Owns: the scheduling loop over a sweep created by :mod:`orchestrator.control.sweep_create` (whose
trials are executions of one configuration, the sampled parameters each execution's extra
parameters): ``max_concurrent_trials``, ``max_total_trials``, ``timeout``, ``trial_timeout``;
judging each running trial by the early-termination policy at the latest evaluation interval its
reports of the primary metric reached and stopping the trials it names (they end STOPPED with the
policy and its numbers as their message; one whose process completed before the stop landed stays
COMPLETED, ``run.supervise.check_stop``); the end reasons;
``resume`` (no finished trial runs again, interrupted ones run again with the same parameters, the
bayesian sampler is re-fed, a trial that ended after the sweep's last write is recorded from the
stored metrics); and registering the best trial's model.

Trials run in this process, each on a worker thread with its own service (store connection),
through the ordinary runner, so a trial is an execution like any other. Writes are batched: a
trial's end and the start of the trial that takes its slot commit together (one fsync), written
by the finished trial's own thread (:mod:`orchestrator.control.sweep_handover`); what the engine
starts or collects itself (the first trials, reruns, ends the hand-over left to it) is batched per
loop turn the same way. The engine's state is guarded by one lock. The sweep row
records this process and a heartbeat: after kill -9 the reaper ends the orphaned trials and
:func:`resume_sweep` continues. A trial's objective is the best value (per goal) it reported. A
failing trial never stops the sweep; when the first ``min(total, 5)`` trials all fail the sweep
ends DEAD, its message counting how its trials ended (those running then may fail, be stopped or
complete) and the last failure's reason. The sweep's stored best follows its best ended trial:
written with the trial end that betters it (:meth:`SweepTrials._end_row`), so a running, killed
or stopped sweep shows it; resume recomputes it from the stored trials. Entry points: :func:`create_sweep` (re-exported),
:func:`run_sweep`, :func:`resume_sweep`; sweeps as resources (stop, list, JSON, background start)
are :mod:`orchestrator.control.sweep_admin`. Starting, watching and collecting trials is the
engine's mixins :mod:`orchestrator.control.sweep_trials` and :mod:`orchestrator.control.sweep_handover`.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from orchestrator.control.sweep_reports import stored_series
from orchestrator.control.sweep_create import check_spec, create_sweep
from orchestrator.control.sweep_handover import Slots, SweepHandover
from orchestrator.control.sweep_trials import (  # noqa: F401 - re-exported
    FAIL_FAST,
    INTERRUPTED,
    STOP_REQUEST,
    STORE_POLL,
    _Trial,
    best_of,
)
from orchestrator.errors import Conflict, OrchestratorError, UsageError
from orchestrator.model import Status
from orchestrator.plan.sampling import Params, make_sampler, total_points
from orchestrator.spec.sweep import SweepSpec
from orchestrator.spec.sweep_kind import from_document
from orchestrator.store.sweep_records import SweepRecords, SweepRow, TrialRow

if TYPE_CHECKING:
    from pathlib import Path

    from orchestrator.control.service import Service

SweepEvent = Callable[[dict[str, Any]], None]
POLL = 0.02  # seconds between looks at running trials' reports (their tracking files)
IDLE_POLL = 0.2  # ... when nothing watches them (no early-termination policy, no trial_timeout)
HEARTBEAT = 2.0
_FINAL = {Status.COMPLETED.value, Status.STOPPED.value, Status.DEAD.value}


class Engine(SweepHandover):
    """Runs one stored sweep in this process until it ends or is stopped."""

    def __init__(self, service: Service, sweep_id: str, on_event: SweepEvent | None = None) -> None:
        self.svc = service
        self.rg = service.rg
        self.records = SweepRecords(service.store)
        self.row = self.records.get(self.rg, sweep_id)
        self.spec = from_document(self.row.document, self.row.name)
        self.on_event = on_event or (lambda e: None)
        self.wspec, self.doc, _ = check_spec(service, self.spec)
        self.cfg = service.store.get_configuration(self.rg, self.row.configuration_id)
        self.sampler = make_sampler(self.spec, self.row.seed)
        self.total = total_points(self.spec)
        self.concurrency = min(self.spec.limits.concurrency, self.total)
        self.series: dict[str, list[float]] = {}
        self.finished: set[str] = set()
        self.running: dict[str, _Trial] = {}
        self.trials: dict[str, _Trial] = {}  # started, not collected yet (running or handed over)
        self.ended: list[TrialRow] = []
        self.best: TrialRow | None = None  # the best ended trial; stored with the end that made it so
        self.rerun: list[tuple[int, Params]] = []
        self.writes: list[tuple[tuple[Any, ...], dict[str, Any]]] = []  # trial ends not committed yet
        self.inputs: dict[str, Path] | None = None  # the trials' input artifacts (local paths)
        self.teardowns: list[threading.Event] = []  # collected trials' threads done: awaited before the sweep ends
        self.slots = Slots()  # the threads trials run on
        self.next_index = 0
        self.workers: queue.Queue[Service] = queue.Queue()
        self.done: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.lock = threading.RLock()  # the engine's state; trials' threads take it at their ends
        self.reason = ""  # why the sweep ends, once it does
        self.deadline = float("inf")

    # ------------------------------------------------------------------ state from the store
    def _load(self) -> None:
        """Trials of earlier runs: finished ones count (and feed the sampler), interrupted ones run again."""
        current: dict[int, TrialRow] = {}
        for t in self.records.trials(self.rg, self.row.id):
            current[t.trial] = t
            self.next_index = max(self.next_index, t.trial + 1)
        for index in sorted(current):
            t = current[index]
            if t.status in _FINAL and t.message != INTERRUPTED and not (t.status == "DEAD" and t.finished_at is None):
                if t.finished_at is None:  # the sweep process died between the trial's end and its record
                    reports = stored_series(self.svc.store, self.rg, t.execution_id, self.spec.objective.primary_metric)
                    t = replace(t, reports=reports, objective=self._objective(reports))
                    self.records.trial_ended(t.execution_id, reports, t.objective, t.message, rg=self.rg,
                                             stopped_message=t.message if t.status == "STOPPED" else "")
                self.ended.append(t)
                self.series[t.execution_id] = list(t.reports)
                self.finished.add(t.execution_id)
                self.sampler.tell(index, t.parameters, t.objective)
            else:
                if t.status not in _FINAL:  # its runner is this sweep's (dead) process: the reaper ends it
                    try:
                        self.svc.store.set_status(self.rg, t.execution_id, Status.DEAD, "sweep process gone")
                    except OrchestratorError:
                        pass
                self.records.set_message(t.execution_id, INTERRUPTED)
                self.rerun.append((index, dict(t.parameters)))
        self.best = best_of(self.ended, self.spec.objective.goal)
        if self.best is not None and (self.row.best_execution_id, self.row.best_value) != \
                (self.best.execution_id, self.best.objective):  # a trial recorded just now, or an older sweep's
            self.records.set_best(self.rg, self.row.id, self.best.execution_id, self.best.objective)

    def _objective(self, reports: list[float]) -> float | None:
        """A trial's objective: the best value (per goal) it reported."""
        if not reports:
            return None
        return min(reports) if self.spec.objective.goal == "minimize" else max(reports)

    def progress(self) -> dict[str, Any]:
        done = self.ended
        best = self.best
        counts = Counter(t.status for t in done)
        return {"total": self.total, "completed": counts["COMPLETED"], "stopped": counts["STOPPED"],
                "failed": counts["DEAD"],
                # running: the trials whose start is told (a hand-over's successor is told after this)
                "running": sum(t.announced for t in self.running.values()), "best": best.objective if best else None,
                "bestTrial": best.trial if best else None}

    # ------------------------------------------------------------------ the loop
    interrupting = False

    def _why_end(self, now: float, stop_requested: bool) -> tuple[str, str] | None:
        if now >= self.deadline:
            return f"sweep timeout ({self.spec.limits.timeout:g} s) reached", "STOPPED"
        if stop_requested:
            return STOP_REQUEST, "STOPPED"
        if self._failing():
            return f"the first {len(self.ended)} trials failed; last: {self.ended[-1].status_message}", "DEAD"
        return None

    def _failed(self) -> str:
        """Why a failing sweep ended, counted from how its trials really ended (a trial running when
        the sweep gave up may fail too, be stopped, or complete before the stop landed)."""
        counts = Counter(t.status for t in self.ended)
        dead = counts["DEAD"]
        more = [f"{n} more {'was' if n == 1 else 'were'} stopped" if status == "STOPPED" else
                f"{n} more completed before the stop" for status in ("STOPPED", "COMPLETED") if (n := counts[status])]
        head = f"all {dead} trials failed" if not more else f"{dead} trials failed; {'; '.join(more)}"
        last = next(t for t in reversed(self.ended) if t.status == "DEAD")
        return f"{head}; last: {last.status_message}"

    def run(self) -> SweepRow:
        self._load()
        self.records.claim(self.rg, self.row.id)
        started = _epoch(self.records.get(self.rg, self.row.id).start_time)
        self.deadline = time.monotonic() + self.spec.limits.timeout - max(0.0, time.time() - started)
        status = "COMPLETED"
        last_beat = last_stop = time.monotonic()
        spare = False
        # Trials' ends wake the loop at once; between them it looks at running trials' reports only
        # when a policy or a trial timeout reads them (else it wakes for stop requests and the deadline).
        poll = POLL if self.spec.early_termination is not None or self.spec.limits.trial_timeout is not None \
            else IDLE_POLL
        try:
            while True:
                now = time.monotonic()
                stop_requested = False
                if not self.reason and now - last_stop >= 0.2:
                    last_stop = now
                    stop_requested = self.records.get(self.rg, self.row.id).target_status == "STOPPED"
                with self.lock:
                    why = None if self.reason else self._why_end(now, stop_requested)
                    if why:
                        self.reason, status = why
                    if self.reason:  # a stop request's trials run again on resume; a timeout's and a failure's do not
                        for trial in list(self.running.values()):
                            self._stop_trial(trial, INTERRUPTED if self.reason == STOP_REQUEST else self.reason)
                    launches: list[tuple[int, Params]] = []
                    while (pick := self._pick(len(launches))) is not None:
                        launches.append(pick)
                    self._commit(launches)
                    if not self.trials and (self.reason or len(self.ended) >= self.total and not self.rerun):
                        break
                if launches and not spare:  # a worker service and threads ready for the first hand-overs,
                    spare = True            # made off their path
                    self.workers.put(self._worker_service())
                    self.slots.reserve(min(self.concurrency, 2))
                eids: list[str] = []
                try:
                    eids.append(self.done.get(timeout=poll))
                    while True:
                        eids.append(self.done.get_nowait())
                except queue.Empty:
                    pass
                now = time.monotonic()
                with self.lock:
                    for eid in eids:
                        self._collect(eid)
                    self._watch(now)
                if now - last_beat >= HEARTBEAT:
                    last_beat = now
                    self.records.heartbeat(self.rg, self.row.id)
        except KeyboardInterrupt:
            self.interrupting = True
            with self.lock:
                for trial in list(self.running.values()):
                    self._stop_trial(trial, INTERRUPTED)
            while self.trials:
                eid = self.done.get()
                with self.lock:
                    self._collect(eid)
            with self.lock:
                self._commit([])
            self.records.finish(self.rg, self.row.id, "STOPPED",
                                f"interrupted; continue with `orchestrator sweeps resume {self.row.id}`")
            raise
        finally:
            for gone in self.teardowns:  # runners still tearing down (their escapee scans, teardown)
                gone.wait()
            self.slots.close()
            while not self.workers.empty():
                self.workers.get_nowait().close()
        with self.lock:
            self._commit([])
        reason = self.reason
        if not reason and self.ended and all(t.status == "DEAD" for t in self.ended):
            status = "DEAD"
        if status == "DEAD":
            reason = self._failed()
        self._finish_best(reason)
        self.records.finish(self.rg, self.row.id, status, reason)
        return self.records.get(self.rg, self.row.id)

    def _finish_best(self, reason: str) -> None:
        best = self.best
        self.records.set_best(self.rg, self.row.id, best.execution_id if best else None,
                              best.objective if best else None)
        if best is None or not self.spec.register_model:
            return
        from orchestrator.control.registry import register

        try:
            mv = register(self.svc.store, self.rg, self.spec.register_model, execution_id=best.execution_id,
                          description=f"best trial of sweep {self.row.id} ({self.spec.objective.primary_metric} "
                                      f"{best.objective:g})", tags=[("orchestrator/sweep", self.row.id)])
            self.records.set_model_version(self.rg, self.row.id, f"{mv.model}/{mv.version}")
        except OrchestratorError as exc:
            self.records.set_model_version(self.rg, self.row.id, f"not registered: {exc.message}")


def _epoch(iso: str | None) -> float:
    from datetime import datetime

    if not iso:
        return time.time()
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run_sweep(service: Service, spec: SweepSpec | None = None, *, sweep_id: str | None = None,
              on_event: SweepEvent | None = None) -> SweepRow:
    """Create the sweep (unless ``sweep_id`` names a stored one) and run it here until it ends."""
    if sweep_id is None:
        if spec is None:
            raise UsageError("run_sweep needs a spec or a sweep id")
        sweep_id = create_sweep(service, spec).id
    row = SweepRecords(service.store).get(service.rg, sweep_id)
    on = on_event or (lambda e: None)
    on({"event": "sweep-started", "sweepId": row.id, "name": row.name})
    return Engine(service, row.id, on).run()


def resume_sweep(service: Service, sweep_id: str, *, on_event: SweepEvent | None = None) -> SweepRow:
    """Continue a sweep whose process ended (crash, kill, Ctrl-C, stop): finished trials stay."""
    from orchestrator.run.reaper import pid_alive

    row = SweepRecords(service.store).get(service.rg, sweep_id)
    if row.status == "COMPLETED":
        raise Conflict(f"sweep {sweep_id} is COMPLETED; nothing to resume")
    if row.status in ("RUNNING", "PENDING") and row.owner_pid and row.owner_pid != _pid() and pid_alive(row.owner_pid):
        raise Conflict(f"sweep {sweep_id} is running in process {row.owner_pid}",
                       hint=f"stop it first: orchestrator sweeps stop {sweep_id}")
    return run_sweep(service, sweep_id=sweep_id, on_event=on_event)


def _pid() -> int:
    import os

    return os.getpid()


__all__ = ["Engine", "check_spec", "create_sweep", "resume_sweep", "run_sweep"]
