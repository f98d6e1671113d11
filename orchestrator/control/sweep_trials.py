"""A sweep's trials: starting them in batches, watching their reports, collecting their ends.

Owns: the trial in flight (``_Trial``), the worker services trials run on, the one transaction that
records the ends of collected trials and creates and starts the next trials' executions
(``_commit``), a trial's thread and runner (``_launch``), ``trial_timeout`` and the
early-termination policy over the reports of running trials (``_watch``), and recording a trial's
end (``_collect``). A mixin of :class:`~orchestrator.control.sweeps.Engine` (uses its state, set in
its ``__init__``, and its ``_objective`` and ``progress``).
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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

STORE_POLL = 0.5  # seconds between looks at the store, for reports that do not come through a file
INTERRUPTED = "interrupted"


@dataclass
class _Trial:
    index: int
    params: Params
    execution: Any
    tail: ReportTail
    thread: threading.Thread | None = None
    started: float = field(default_factory=time.monotonic)
    stop_message: str = ""
    status: str = ""
    store_polled: float = 0.0
    reported: bool = False  # handed to the engine (done queue) already

class SweepTrials:
    """Starts, watches and collects a sweep's trials; a mixin of the engine."""

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
    ended: list[TrialRow]
    rerun: list[tuple[int, Params]]
    writes: list[tuple[tuple[Any, ...], dict[str, Any]]]
    inputs: dict[str, Path] | None
    threads: list[threading.Thread]
    workers: queue.Queue[Service]
    done: queue.Queue[str]
    interrupting: bool

    def _worker_service(self) -> Service:
        try:
            return self.workers.get_nowait()
        except queue.Empty:
            from orchestrator.control.service import Service

            other = Service(self.svc.home, self.rg, reap=False)
            other.tracking_base = self.svc.tracking_base
            return other

    def _commit(self, launches: list[tuple[int, Params]]) -> None:
        """One transaction (one fsync) for the ends of the trials collected since the last one and
        the executions of the trials to start; the trials start once it is committed."""
        if not self.writes and not launches:
            return
        bound = []
        for index, params in launches:  # a binding error raises before anything is written
            rendered = {self.spec.trial.template_parameter(k): render(v) for k, v in params.items()}
            bound.append((index, params, rendered, bind_parameters(self.wspec, [*self.cfg.parameter_bindings,
                                                                                *rendered.items()])))
        if self.inputs is None:  # a trial execution records no inputs: its configuration's, the same for all
            self.inputs = self.svc.bound_inputs([{"key": k, "artifactId": v}
                                                 for k, v in self.cfg.input_artifact_bindings])
        started: list[tuple[int, Params, Any, Service, Runner | BaseException]] = []
        with self.svc.store.transaction():
            for args, kwargs in self.writes:
                self.records.trial_ended(*args, **kwargs)
            for index, params, rendered, values in bound:
                ex = self.svc.store.create_execution(self.rg, self.cfg, str(self.svc.home / "executions"),
                                                    extra_parameters=sorted(rendered.items()))
                self.records.add_trial(self.row.id, index, ex.id, params)
                worker = self._worker_service()
                runner: Runner | BaseException
                try:  # the trial's start is recorded with its execution: PENDING -> RUNNING, no second fsync
                    made = worker.runner(ex, RunPlan(self.wspec, values, document=self.doc), dict(self.inputs))
                except Exception as exc:  # noqa: BLE001 - this trial fails (DEAD), the sweep goes on
                    runner = exc
                else:
                    made.begin(self.svc.store)
                    runner = made
                started.append((index, params, ex, worker, runner))
        self.writes = []
        for index, params, ex, worker, runner in started:
            self._launch(index, params, ex, worker, runner)

    def _launch(self, index: int, params: Params, ex: Any, worker: Service, runner: Runner | BaseException) -> None:
        trial = _Trial(index, params, ex, ReportTail(ex.workdir, self.spec.objective.primary_metric))
        self.running[ex.id] = trial
        self.series[ex.id] = []

        def report(_status: object = None) -> None:  # on this trial's thread only
            if not trial.reported:
                trial.reported = True
                self.done.put(ex.id)

        if not isinstance(runner, BaseException):
            runner.on_recorded = report  # collected (and the next trial started) while the runner tears down

        def body() -> None:
            try:
                if isinstance(runner, BaseException):
                    raise runner
                trial.status = worker.run_runner(runner).value
            except BaseException as exc:  # noqa: BLE001 - the engine records every way a trial ends
                trial.status = "DEAD"
                try:
                    worker.store.set_status(self.rg, ex.id, Status.DEAD, f"trial crashed: {exc}")
                except OrchestratorError:
                    pass
            finally:
                self.workers.put(worker)
                report()

        trial.thread = threading.Thread(target=body, name=f"trial-{index}", daemon=True)
        trial.thread.start()
        self.on_event({"event": "trial-started", "trial": index, "executionId": ex.id, "parameters": params})

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
            for n in range(seen + 1, len(values) + 1):
                why = early_stop.evaluate(policy, goal, self.series, eid, n, frozenset(self.finished))
                if why:
                    self._stop_trial(trial, why)
                    self.on_event({"event": "trial-terminated", "trial": trial.index, "executionId": eid,
                                   "message": why})
                    break

    def _collect(self, eid: str) -> None:
        trial = self.running.pop(eid)
        if trial.thread is not None:  # its runner may still be tearing down: joined at the end
            self.threads.append(trial.thread)
        reports = stored_series(self.svc.store, self.rg, eid, self.spec.objective.primary_metric)
        if len(reports) < len(trial.tail.series()):
            reports = trial.tail.series()
        self.series[eid] = reports
        self.finished.add(eid)
        objective = self._objective(reports)
        ex = self.svc.store.get_execution(self.rg, eid)
        status = ex.status.value
        if self.interrupting and status == "STOPPED" and not trial.stop_message:
            trial.stop_message = INTERRUPTED
        if status == "COMPLETED":
            trial.stop_message = ""  # it ended before the stop landed: a finished trial
        stopped = trial.stop_message if status == "STOPPED" and trial.stop_message != INTERRUPTED else ""
        self.writes.append(((eid, reports, objective, trial.stop_message), {"rg": self.rg, "stopped_message": stopped}))
        if trial.stop_message == INTERRUPTED:
            self.rerun.append((trial.index, trial.params))
            return
        self.sampler.tell(trial.index, trial.params, objective if status != "DEAD" else None)
        message = stopped or ex.status_message
        self.ended.append(TrialRow(self.row.id, trial.index, eid, trial.params, objective, reports,
                                   trial.stop_message, None, None, status, message))
        self.on_event({"event": "trial-ended", "trial": trial.index, "executionId": eid, "status": status,
                       "objective": objective, "message": message})
        self.on_event({"event": "progress", **self.progress()})
