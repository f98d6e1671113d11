"""A sweep's trials: creating and starting them, watching their reports, settling their ends.

Owns: the trial in flight (``_Trial``), the worker services trials run on, a trial's execution,
link to the sweep and start record written inside a given transaction (``_create``) and its
thread and runner started once that is committed (``_start``), the engine's batch of those (the
ends of the trials it collected and the trials it starts: one transaction, ``_commit``), what may
start next (``_pick``: reruns first, then the sampler, within the limits), ``trial_timeout`` and
the early-termination policy over the reports of running trials (``_watch``), and a trial's end:
settled in memory (``_settle``: its objective, the sampler told) and told (``_tell_end``, in
the order things happen: a trial's start before its thread runs, its end once committed, before
the start of the trial taking its slot), by the engine (``_collect``) or, on the trial's own
thread, by the slot hand-over (:mod:`orchestrator.control.sweep_handover`). A mixin of
:class:`~orchestrator.control.sweeps.Engine` (uses its state, set in its ``__init__``, its lock,
``_objective`` and ``progress``); every method runs with the engine's lock held.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from orchestrator.control.sweep_reports import ReportTail, stored_series
from orchestrator.errors import Conflict, OrchestratorError
from orchestrator.model import Status, WorkflowSpec
from orchestrator.plan import early_stop
from orchestrator.plan.binding import RunPlan, bind_parameters
from orchestrator.plan.sampling import Params, render
from orchestrator.spec.sweep import SweepSpec
from orchestrator.store.sweep_records import SweepRecords, SweepRow, TrialRow

if TYPE_CHECKING:
    from pathlib import Path

    from orchestrator.control.service import Service
    from orchestrator.model import Configuration
    from orchestrator.run.runner import Runner
    from orchestrator.store.sqlite import SqliteStore

STORE_POLL = 0.5  # seconds between looks at the store, for reports that do not come through a file
INTERRUPTED = "interrupted"
STOP_REQUEST = "stopped by request"
FAIL_FAST = 5  # the sweep gives up when its first min(total, FAIL_FAST) trials all failed
Write = tuple[tuple[Any, ...], dict[str, Any]]  # SweepRecords.trial_ended's arguments


def _rank(status: str, objective: float | None, index: int, goal: str) -> tuple[bool, float, int] | None:
    """How good an ended trial is (lower is better): COMPLETED before policy-STOPPED, then the
    objective per goal, then the earlier trial; None when it has no say (failed, no objective)."""
    if objective is None or status not in ("COMPLETED", "STOPPED"):
        return None
    return status != "COMPLETED", objective if goal == "minimize" else -objective, index


def best_of(trials: list[TrialRow], goal: str) -> TrialRow | None:
    """The best COMPLETED (or, when none completed, policy-STOPPED) trial by objective; earlier wins ties."""
    ranked = [(r, t) for t in trials if (r := _rank(t.status, t.objective, t.trial, goal)) is not None]
    return min(ranked, key=lambda rt: rt[0])[1] if ranked else None


@dataclass
class _Trial:
    index: int
    params: Params
    execution: Any
    tail: ReportTail
    launch: tuple[Service, Runner | BaseException] | None = None  # its worker and runner, until started
    gone: threading.Event = field(default_factory=threading.Event)  # its thread is done with it (torn down)
    started: float = field(default_factory=time.monotonic)
    stop_message: str = ""
    status: str = ""
    store_polled: float = 0.0
    reported: bool = False  # handed to the engine (done queue) already
    announced: bool = False  # its trial-started event is out
    settled: bool = False  # its end is settled in memory (by the hand-over: the engine only announces it)
    ended_event: dict[str, Any] | None = None  # its trial-ended event, until it is out (``_tell_end``)
    terminated_event: dict[str, Any] | None = None  # the policy's stop, told only if it ends STOPPED
    successor: _Trial | None = None  # the trial its slot starts next (created in its end's transaction)
    locked: bool = False  # its thread holds the engine's lock until its end's transaction is committed
    committed: bool = False  # its end's transaction (with the hand-over's writes) is committed
    spawned: threading.Event = field(default_factory=threading.Event)  # its first steps started, or it ended
    gate: threading.Event | None = None  # started before its start is committed: set once it is (or is not)
    cancelled: bool = False  # its start was not committed: it never runs, nobody collects it


class SweepTrials:
    """Creates, starts, watches and settles a sweep's trials; a mixin of the engine."""

    svc: Service
    rg: str
    records: SweepRecords
    row: SweepRow
    spec: SweepSpec
    wspec: WorkflowSpec
    doc: dict[str, Any]
    cfg: Configuration
    sampler: Any
    on_event: Callable[[dict[str, Any]], None]
    series: dict[str, list[float]]
    finished: set[str]
    running: dict[str, _Trial]
    trials: dict[str, _Trial]
    ended: list[TrialRow]
    best: TrialRow | None  # the best of ``ended``
    rerun: list[tuple[int, Params]]
    writes: list[Write]
    inputs: dict[str, Path] | None
    teardowns: list[threading.Event]
    slots: Any  # sweep_handover.Slots
    workers: queue.Queue[Service]
    done: queue.SimpleQueue[str]
    interrupting: bool
    reason: str
    deadline: float
    total: int
    concurrency: int
    next_index: int
    lock: threading.RLock

    if TYPE_CHECKING:  # the engine's, and the hand-over's (sweep_handover)
        def _objective(self, reports: list[float]) -> float | None: ...
        def progress(self) -> dict[str, Any]: ...
        def _ending(self, trial: _Trial, store: SqliteStore, status: Status, message: str) -> None: ...
        def _handed_over(self, trial: _Trial) -> None: ...
        def _abandon(self, trial: _Trial) -> None: ...

    def _worker_service(self) -> Service:
        try:
            return self.workers.get_nowait()
        except queue.Empty:
            from orchestrator.control.service import Service

            other = Service(self.svc.home, self.rg, reap=False)
            other.tracking_base = self.svc.tracking_base
            return other

    def _failing(self) -> bool:
        """The first ``min(total, FAIL_FAST)`` trials all failed: the sweep ends DEAD."""
        n = len(self.ended)
        return bool(n) and n >= min(self.total, FAIL_FAST) and all(t.status == "DEAD" for t in self.ended)

    def _pick(self, pending: int = 0) -> tuple[int, Params] | None:
        """The next trial to start, if the sweep goes on and a slot is free (``pending``: picked
        already, not running yet): an interrupted one again, else the sampler's next point."""
        if self.reason or time.monotonic() >= self.deadline or self._failing():
            return None
        launched = len(self.ended) + len(self.running) + pending
        if len(self.running) + pending >= self.concurrency or not self.rerun and launched >= self.total:
            return None
        if self.rerun:
            return self.rerun.pop(0)
        ask = self.sampler.ask(self.next_index)
        if ask is None:
            self.total = launched
            return None
        self.next_index += 1
        return self.next_index - 1, ask

    def _bind(self, params: Params) -> tuple[dict[str, str], dict[str, str]]:
        """The template parameters a trial's point sets, and all bound values (raises on a bad one)."""
        rendered = {self.spec.trial.template_parameter(k): render(v) for k, v in params.items()}
        return rendered, bind_parameters(self.wspec, [*self.cfg.parameter_bindings, *rendered.items()])

    def _create(self, store: SqliteStore, index: int, params: Params, bound: tuple[dict[str, str], dict[str, str]]
                ) -> _Trial:
        """The trial's execution, its link to the sweep and its start (PENDING -> RUNNING), written on
        ``store`` in the caller's transaction; it starts (``_start``) once that is committed."""
        rendered, values = bound
        ex = store.create_execution(self.rg, self.cfg, str(self.svc.home / "executions"),
                                    extra_parameters=sorted(rendered.items()))
        SweepRecords(store).add_trial(self.row.id, index, ex.id, params)
        worker = self._worker_service()
        runner: Runner | BaseException
        try:
            made = worker.runner(ex, RunPlan(self.wspec, values, document=self.doc), dict(self.inputs or {}))
        except Exception as exc:  # noqa: BLE001 - this trial fails (DEAD), the sweep goes on
            runner = exc
        else:
            try:
                made.begin(store)
            except BaseException:
                self.workers.put(worker)
                raise
            runner = made
        return _Trial(index, params, ex, ReportTail(ex.workdir, self.spec.objective.primary_metric),
                      launch=(worker, runner))

    def _enlist(self, trial: _Trial) -> None:
        self.running[trial.execution.id] = trial
        self.trials[trial.execution.id] = trial
        self.series[trial.execution.id] = []

    def _commit(self, launches: list[tuple[int, Params]]) -> None:
        """The engine's batch, one transaction (one fsync): the ends of the trials it collected
        since the last one and the trials to start; they start once it is committed."""
        if not self.writes and not launches:
            return
        bound = [(index, params, self._bind(params)) for index, params in launches]  # raises before any write
        if self.inputs is None:  # a trial execution records no inputs: its configuration's, the same for all
            self.inputs = self.svc.bound_inputs([{"key": k, "artifactId": v}
                                                 for k, v in self.cfg.input_artifact_bindings])
        made: list[_Trial] = []
        # the best as it is now, once (a queued end's best may have been bettered by a hand-over since)
        if sum(kwargs.pop("best", None) is not None for _, kwargs in self.writes) and self.best is not None:
            self.writes[-1][1]["best"] = (self.best.execution_id, self.best.objective)
        with self.svc.store.transaction():
            for args, kwargs in self.writes:
                self.records.trial_ended(*args, **kwargs)
            for index, params, values in bound:
                made.append(self._create(self.svc.store, index, params, values))
        self.writes = []
        for trial in made:
            self._enlist(trial)
            self._announce(trial)  # before its thread runs: its end is told after its start
            self._start(trial)

    def _start(self, trial: _Trial, gated: bool = False) -> None:
        """Start a trial's thread: its runner, then its end (hand-over or collection). ``gated``:
        its start is being committed; the runner prepares meanwhile and starts its process once
        ``trial.gate`` is set (``Runner.gate``)."""
        assert trial.launch is not None
        (worker, runner), trial.launch = trial.launch, None
        ex = trial.execution
        if gated:
            trial.gate = threading.Event()
        if not isinstance(runner, BaseException):
            runner.on_ending = lambda store, status, message: self._ending(trial, cast("SqliteStore", store), status,
                                                                           message)
            runner.on_recorded = lambda _status: self._handed_over(trial)
            runner.on_started = trial.spawned.set
            if gated:
                runner.gate = lambda: self._opened(trial)

        def body() -> None:
            try:
                if isinstance(runner, BaseException):
                    if not self._opened(trial):
                        return
                    raise runner
                trial.status = worker.run_runner(runner).value
            except BaseException as exc:  # noqa: BLE001 - the engine records every way a trial ends
                trial.status = "DEAD"
                try:
                    worker.store.set_status(self.rg, ex.id, Status.DEAD, f"trial crashed: {exc}")
                except OrchestratorError:
                    pass
            finally:
                if trial.locked or trial.settled and not trial.committed:
                    self._abandon(trial)  # its end's transaction did not commit: the engine collects it
                self.workers.put(worker)
                trial.spawned.set()
                if not trial.cancelled:
                    self._report(trial)
                trial.gone.set()

        self.slots.run(body)

    @staticmethod
    def _opened(trial: _Trial) -> bool:
        """Wait until the trial's start is committed (True) or is not (False); at once when not gated."""
        if trial.gate is not None:
            trial.gate.wait()
        return not trial.cancelled

    def _report(self, trial: _Trial) -> None:
        if not trial.reported:
            trial.reported = True
            self.done.put(trial.execution.id)

    def _announce(self, trial: _Trial) -> None:
        if not trial.announced:
            trial.announced = True
            self.on_event({"event": "trial-started", "trial": trial.index, "executionId": trial.execution.id,
                           "parameters": trial.params})

    def _stop_trial(self, trial: _Trial, message: str) -> None:
        if trial.stop_message:
            return
        trial.stop_message = message
        self.records.set_message(trial.execution.id, message)
        try:
            self.svc.store.request_stop(self.rg, trial.execution.id)
        except Conflict:
            pass  # it ended meanwhile

    def _watch(self, now: float) -> None:
        policy = self.spec.early_termination
        goal = self.spec.objective.goal
        for eid, trial in list(self.running.items()):
            if trial.stop_message:
                continue
            limit = self.spec.limits.trial_timeout
            if limit is not None and now - trial.started > limit:
                self._stop_trial(trial, f"trial_timeout ({limit:g} s) exceeded")
                continue
            seen = len(self.series[eid])
            if policy is None:
                continue
            if trial.tail.poll():
                values = trial.tail.series()
            elif not trial.tail.values and now - trial.store_polled >= STORE_POLL:
                # no tracking-file reports: the metric may come through the MLflow endpoint or
                # SAP's tracking API, which write to the store as they are logged
                trial.store_polled = now
                values = stored_series(self.svc.store, self.rg, eid, self.spec.objective.primary_metric)
                if len(values) <= seen:
                    continue
            else:
                continue
            self.series[eid] = values
            # Judged where it is: at the latest evaluation interval among the reports just seen, on
            # everything it reported up to there (not at an earlier interval it has already passed:
            # its best so far would not be the best it reported, and the stop would come too late).
            n = next((k for k in range(len(values), seen, -1) if early_stop.due(policy, k)), None)
            why = early_stop.evaluate(policy, goal, self.series, eid, n, frozenset(self.finished)) if n else None
            if why:
                self._stop_trial(trial, why)
                # told with its end, if it ends STOPPED (it may complete before the stop lands)
                trial.terminated_event = {"event": "trial-terminated", "trial": trial.index, "executionId": eid,
                                          "message": why}

    def _reports(self, store: SqliteStore, trial: _Trial) -> list[float]:
        """A finished trial's reports: the store's (its last metric lines are committed with its end)
        unless its tracking files showed more."""
        reports = stored_series(store, self.rg, trial.execution.id, self.spec.objective.primary_metric)
        return reports if len(reports) >= len(trial.tail.series()) else trial.tail.series()

    def _end_row(self, trial: _Trial, reports: list[float], status: str) -> Write:
        """The trial row's end (``SweepRecords.trial_ended``'s arguments); settles its stop message."""
        if self.interrupting and status == "STOPPED" and not trial.stop_message:
            trial.stop_message = INTERRUPTED
        if status == "COMPLETED":
            trial.stop_message = ""  # it ended before the stop landed: a finished trial
        stopped = trial.stop_message if status == "STOPPED" and trial.stop_message != INTERRUPTED else ""
        objective = self._objective(reports)
        best = None  # the sweep's best follows its best ended trial, written with the end that improves it
        goal, now = self.spec.objective.goal, self.best
        rank = _rank(status, objective, trial.index, goal) if trial.stop_message != INTERRUPTED else None
        if rank is not None and (now is None or rank < (_rank(now.status, now.objective, now.trial, goal) or rank)):
            best = (trial.execution.id, objective)
        return ((trial.execution.id, reports, objective, trial.stop_message),
                {"rg": self.rg, "stopped_message": stopped, "best": best})

    def _settle(self, trial: _Trial, reports: list[float], status: str, message: str) -> None:
        """A trial's end in memory: out of the running ones, its series, the sampler told (before
        anything is sampled after it), its row among the ended ones (or rerun when interrupted)."""
        eid = trial.execution.id
        self.running.pop(eid, None)
        self.series[eid] = reports
        self.finished.add(eid)
        if trial.stop_message == INTERRUPTED:
            self.rerun.append((trial.index, trial.params))
            return
        objective = self._objective(reports)
        self.sampler.tell(trial.index, trial.params, objective if status != "DEAD" else None)
        if status == "STOPPED" and trial.stop_message:
            message = trial.stop_message
        row = TrialRow(self.row.id, trial.index, eid, trial.params, objective, reports, trial.stop_message, None, None,
                       status, message)
        self.ended.append(row)
        self.best = best_of([row] if self.best is None else [self.best, row], self.spec.objective.goal)
        trial.ended_event = {"event": "trial-ended", "trial": trial.index, "executionId": eid, "status": status,
                             "objective": objective, "message": message}

    def _collect(self, eid: str) -> None:
        """A trial's thread is done with it (its end committed): settle it unless its hand-over did,
        and announce it (and the trial its slot started)."""
        trial = self.trials.pop(eid)
        self.teardowns.append(trial.gone)  # its runner may still be tearing down: awaited at the end
        self._announce(trial)
        if not trial.settled:
            reports = self._reports(self.svc.store, trial)
            ex = self.svc.store.get_execution(self.rg, eid)
            self.writes.append(self._end_row(trial, reports, ex.status.value))
            self._settle(trial, reports, ex.status.value, ex.status_message)
        self._tell_end(trial)  # unless its hand-over told it when its end was committed
        if trial.successor is not None:
            self._announce(trial.successor)

    def _tell_end(self, trial: _Trial) -> None:
        """Tell a settled trial's end once it is committed, with the lock held: the policy's stop
        (only when it ended STOPPED), its end, the progress as printed so far."""
        ended, trial.ended_event = trial.ended_event, None
        if ended is None:
            return
        terminated, trial.terminated_event = trial.terminated_event, None
        if terminated is not None and ended["status"] == "STOPPED":
            self.on_event(terminated)
        self.on_event(ended)
        self.on_event({"event": "progress", **self.progress()})
