"""The deployment manager: one detached process per store that supervises every predictor.

Owns: the lifecycle a deployment goes through after the API or the CLI recorded it — UNKNOWN ->
PENDING (predictor started) -> RUNNING (it answers), STOPPING -> STOPPED on a stop request or an
expired ``ttl``, DEAD with the reason when a predictor exits by itself (``kill -9`` included) or
never becomes ready; the configuration swap (the new predictor must be ready before the store's
port switches to it, and the old one keeps serving for :data:`DRAIN` seconds before SIGTERM, so no
request fails); and re-starting what a previous manager left (its predictors are killed by their
token and started again). Predictors are step processes (:mod:`orchestrator.run.steps`: own
session, capped log, SIGTERM -> grace -> SIGKILL of the tree), watched by
:class:`orchestrator.run.watch.Supervisor`; the API server never runs one. The manager holds a
heartbeat row (``deployment_manager``) so that any process (server, CLI) can tell whether one runs
and start it (:func:`ensure_running`); it exits once no deployment needs it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.control.deploy_container import answers, remove_left
from orchestrator.control.deploy_launch import Launch, listening, plan_launch
from orchestrator.errors import OrchestratorError
from orchestrator.run.steps import (
    DEFAULT_LOG_CAP,
    StepProcess,
    StepResult,
    StepSpec,
    kill_tagged,
    log_tail,
)
from orchestrator.run.watch import Supervisor
from orchestrator.store.deployment_records import DeploymentRecords

READY_TIMEOUT = float(os.environ.get("ORCHESTRATOR_DEPLOY_READY_TIMEOUT", "60"))
GRACE = float(os.environ.get("ORCHESTRATOR_KILL_GRACE", "3"))
DRAIN = float(os.environ.get("ORCHESTRATOR_DEPLOY_DRAIN", "2"))  # old predictor serves on after a swap
IDLE_EXIT = float(os.environ.get("ORCHESTRATOR_DEPLOY_IDLE", "20"))
BEAT = 1.0
STALE = 10.0  # a manager whose heartbeat is older is taken for dead
SCAN = 0.25


def token_prefix(deployment_id: str) -> str:
    return f"deploy-{deployment_id}-"


@dataclass
class Pred:
    """One predictor process of a deployment."""

    rg: str
    dep_id: str
    token: str
    launch: Launch
    proc: StepProcess
    started: float
    role: str  # "active" | "candidate"
    ready: bool = False
    port: int = 0
    stopping: str = ""  # why we stop it ("" = it may not exit by itself)
    kill_at: float = 0.0  # a replaced predictor: SIGTERM at this monotonic time
    note: str = ""  # kept as the status message once it runs (e.g. why it was restarted)


@dataclass
class Dep:
    rg: str
    id: str
    preds: list[Pred] = field(default_factory=list)
    waiting: str = ""  # why it is not started (a hard-coded port in use)

    def active(self) -> Pred | None:
        return next((p for p in self.preds if p.role == "active" and not p.stopping), None)

    def candidate(self) -> Pred | None:
        return next((p for p in self.preds if p.role == "candidate" and not p.stopping), None)


def describe_exit(result: StepResult) -> str:
    if result.error:
        return result.error
    if result.exit_code < 0:
        try:
            name = signal.Signals(-result.exit_code).name
        except ValueError:
            name = f"signal {-result.exit_code}"
        return f"predictor killed by {name}"
    return f"predictor exited with code {result.exit_code}"


class Manager:
    """The loop of ``orchestrator _deployments`` (one per store, see :func:`ensure_running`)."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.records = DeploymentRecords(svc.store)
        self.sup = Supervisor()
        self.deps: dict[tuple[str, str], Dep] = {}
        self.preds: dict[str, Pred] = {}
        self.pid = os.getpid()
        self.seq = 0
        self.stop = False
        self.workroot = Path(svc.home) / "deployments"

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        from orchestrator.run.reaper import pid_alive

        row = self.records.manager()
        dead = row["pid"] if row and row["pid"] and not pid_alive(row["pid"]) else None
        if not self.records.claim_manager(self.pid, f"{self.pid}", STALE, dead_pid=dead):
            return 0
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop", True))
        last_beat = last_scan = 0.0
        idle_since = time.monotonic()
        try:
            while not self.stop:
                now = time.monotonic()
                try:
                    for token, result in self.sup.poll(0.1):
                        self._ended(str(token), result)
                    now = time.monotonic()
                    self._readiness(now)
                    if now - last_scan >= SCAN:
                        last_scan = now
                        self._scan(now)
                    if now - last_beat >= BEAT:
                        last_beat = now
                        if not self.records.manager_beat(self.pid):
                            return 1  # another manager took over: it restarts what this one ran
                except Exception as exc:  # noqa: BLE001 - a store hiccup must not take every predictor down
                    sys.stderr.write(f"deployment manager: {type(exc).__name__}: {exc}\n")
                    sys.stderr.flush()
                    time.sleep(0.5)
                if self.preds or self.deps:
                    idle_since = now
                elif now - idle_since >= IDLE_EXIT and self.records.release_manager(self.pid, only_if_idle=True):
                    return 0
        finally:
            self._shutdown()
        self.records.release_manager(self.pid)
        return 0

    def _shutdown(self) -> None:
        """The manager leaves (SIGTERM): its predictors go with it; deployments keep their status
        so the next manager starts them again."""
        for p in list(self.preds.values()):
            p.proc.kill("deployment manager stopped", grace=min(GRACE, 1.0))
        deadline = time.monotonic() + min(GRACE, 1.0) + 0.5
        while self.sup.procs and time.monotonic() < deadline:
            self.sup.poll(0.05)
        for p in list(self.preds.values()):
            p.proc.force_kill()
            removal = getattr(p.proc, "removal", None)  # a container: removed before the manager leaves
            if removal is not None:
                removal.join(timeout=30)
        self.sup.close()

    # ------------------------------------------------------------------ store -> processes
    def _scan(self, now: float) -> None:
        rows = self.records.open_deployments()
        seen = set()
        for row in rows:
            key = (row["rg"], row["id"])
            seen.add(key)
            dep = self.deps.get(key)
            if dep is None:
                dep = self.deps[key] = Dep(row["rg"], row["id"])
            try:
                self._act(dep, row, now)
            except OrchestratorError as exc:  # a store hiccup on one deployment must not end the manager
                sys.stderr.write(f"deployment {row['id']}: {exc}\n")
        for key in [k for k, d in self.deps.items() if k not in seen and not d.preds]:
            del self.deps[key]

    def _act(self, dep: Dep, row: dict[str, Any], now: float) -> None:
        if row["target_status"] in ("STOPPED", "DELETED"):
            live = [p for p in dep.preds]
            if live:
                if any(not p.stopping for p in live):
                    if row["status"] in ("PENDING", "RUNNING", "UNKNOWN"):
                        self.records.update(dep.rg, dep.id, status="STOPPING")
                    for p in live:
                        self._stop(p, "stopped by request")
                return
            self._finish_stop(dep, row)
            return
        if row["expires_at"] and time.time() >= row["expires_at"]:
            self.records.request_stop(dep.rg, dep.id, message=f"stopped: ttl {row['ttl']} expired")
            return
        active, cand = dep.active(), dep.candidate()
        if active is None and cand is None:
            if row["status"] in ("UNKNOWN", "PENDING", "RUNNING"):
                note = ""
                if row["status"] != "UNKNOWN" and row["pid"]:
                    note = f"restarted: its predictor (pid {row['pid']}) belonged to a deployment manager that stopped"
                kill_tagged(token_prefix(dep.id), prefix=True)  # a previous manager's predictor
                if row["status"] != "UNKNOWN":
                    remove_left(dep.id)  # ... and its container, if it ran one
                self._start(dep, row, "active", note)
            return
        if active is not None and row["configuration_id"] != active.launch.configuration_id:
            if not active.ready:  # PATCHed before it ever served: start over with the new one
                self._stop(active, "replaced before it was ready")
                self._start(dep, row, "active", "")
            elif cand is None:
                self._start(dep, row, "candidate", "")
            elif cand.launch.configuration_id != row["configuration_id"]:
                self._stop(cand, "replaced by a newer configuration")
                self._start(dep, row, "candidate", "")

    def _finish_stop(self, dep: Dep, row: dict[str, Any]) -> None:
        if row["status"] not in ("STOPPED", "DEAD", "COMPLETED"):
            remove_left(dep.id)  # what a killed manager left running
            msg = row["status_message"] if (row["status_message"] or "").startswith("stopped") else "stopped by request"
            self.records.update(dep.rg, dep.id, status="STOPPED", status_message=msg)
        if row["target_status"] == "DELETED":
            self.records.hide(dep.rg, dep.id)
        self.deps.pop((dep.rg, dep.id), None)

    def _start(self, dep: Dep, row: dict[str, Any], role: str, note: str) -> None:
        self.seq += 1
        token = f"{token_prefix(dep.id)}{self.pid}-{self.seq}"
        workdir = self.workroot / dep.id
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            launch = plan_launch(self.svc.scoped(dep.rg), row, workdir=str(workdir), token=token)
        except OrchestratorError as exc:
            self._dead(dep, f"cannot start the predictor of configuration {row['configuration_id']}: {exc.message}")
            return
        if launch.fixed_port:
            holder = next((p for p in self.preds.values() if p.launch.fixed_port and p.launch.port == launch.port
                           and p.dep_id != dep.id), None)
            busy = holder is not None or listening(launch.port)
            if busy:
                why = (f"waiting: the ServingTemplate hard-codes port {launch.port}, which "
                       + (f"deployment {holder.dep_id} uses" if holder else "another process listens on")
                       + "; it runs one deployment at a time (declare no containerPort and read $PORT instead)")
                if dep.waiting != why:
                    dep.waiting = why
                    self.records.update(dep.rg, dep.id, status="PENDING", status_message=why)
                return
        dep.waiting = ""
        header = (f"[orchestrator] {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} starting {launch.kind} "
                  f"predictor for configuration {launch.configuration_id}\n")
        proc = StepProcess(StepSpec(launch.argv, launch.env, str(workdir), row["log_path"], token,
                                    log_cap=DEFAULT_LOG_CAP, header=header))
        if launch.container_name:  # the container executor: stopped by the engine, then removed
            from orchestrator.run.container import ContainerStep

            proc = ContainerStep(proc.spec)
            proc.engine, proc.name, proc.client_env = launch.engine, launch.container_name, launch.env
        if launch.ready_file:
            try:
                os.unlink(launch.ready_file)
            except OSError:
                pass
        pred = Pred(dep.rg, dep.id, token, launch, proc, time.monotonic(), role, note=note)
        self.preds[token] = pred
        dep.preds.append(pred)
        self.sup.start(token, proc)
        if role == "active":
            msg = note or "; ".join(launch.notes) or "starting the predictor"
            self.records.update(dep.rg, dep.id, status="PENDING", status_message=msg,
                                pid=proc.proc.pid if proc.proc else None)
        else:
            self.records.update(dep.rg, dep.id, status_message=f"updating to configuration {launch.configuration_id}")

    def _stop(self, pred: Pred, reason: str, delay: float = 0.0) -> None:
        if pred.stopping:
            return
        pred.stopping = reason
        if delay:
            pred.kill_at = time.monotonic() + delay
        else:
            pred.proc.kill(reason, grace=GRACE)

    def _dead(self, dep: Dep, reason: str) -> None:
        for p in dep.preds:
            self._stop(p, "the deployment is DEAD")
        self.records.update(dep.rg, dep.id, status="DEAD", status_message=reason[:256])

    # ------------------------------------------------------------------ processes -> store
    def _readiness(self, now: float) -> None:
        for pred in list(self.preds.values()):
            if pred.kill_at and now >= pred.kill_at:
                pred.kill_at = 0.0
                pred.proc.kill(pred.stopping, grace=GRACE)
            if pred.ready or pred.stopping:
                continue
            port = self._ready_port(pred)
            if port:
                self._became_ready(pred, port)
            elif now - pred.started > READY_TIMEOUT:
                dep = self.deps.get((pred.rg, pred.dep_id))
                self._stop(pred, "never became ready")
                if dep is not None:
                    self._dead(dep, f"the predictor did not become ready within {READY_TIMEOUT:g} s"
                               + _last_words(pred, None))

    def _ready_port(self, pred: Pred) -> int:
        launch = pred.launch
        if launch.ready_file:
            try:
                data = json.loads(Path(launch.ready_file).read_text())
                return int(data["port"])
            except (OSError, ValueError, KeyError, TypeError):
                return 0
        ready = answers if launch.container_name else listening  # an engine holds a published port itself
        return launch.port if ready(launch.port) else 0

    def _became_ready(self, pred: Pred, port: int) -> None:
        pred.ready, pred.port = True, port
        dep = self.deps.get((pred.rg, pred.dep_id))
        pid = pred.proc.proc.pid if pred.proc.proc else None
        fields: dict[str, Any] = {"port": port, "pid": pid, "serving_configuration_id": pred.launch.configuration_id,
                                  "status_message": "; ".join([pred.note] * bool(pred.note) + pred.launch.notes)
                                  or None}
        if pred.role == "candidate" and dep is not None:
            old = dep.active()
            pred.role = "active"
            self.records.update(pred.rg, pred.dep_id, **fields)  # the proxy switches here, atomically
            if old is not None:
                old.role = "replaced"
                self._stop(old, f"replaced by configuration {pred.launch.configuration_id}", delay=DRAIN)
            return
        self.records.update(pred.rg, pred.dep_id, status="RUNNING", **fields)

    def _ended(self, token: str, result: StepResult) -> None:
        pred = self.preds.pop(token, None)
        if pred is None:
            return
        dep = self.deps.get((pred.rg, pred.dep_id))
        if dep is not None:
            dep.preds = [p for p in dep.preds if p is not pred]
        if pred.launch.ready_file:
            try:
                os.unlink(pred.launch.ready_file)
            except OSError:
                pass
        if dep is None:
            return
        if pred.stopping:
            if not dep.preds:
                row = self._row(dep)
                if row is not None and row["target_status"] in ("STOPPED", "DELETED"):
                    self._finish_stop(dep, row)
            return
        what = " during the update to configuration " + pred.launch.configuration_id if pred.role == "candidate" else ""
        self._dead(dep, describe_exit(result) + f" (pid {result.pid}){what}" + _last_words(pred, result))

    def _row(self, dep: Dep) -> dict[str, Any] | None:
        try:
            return self.records.get(dep.rg, dep.id)
        except OrchestratorError:
            return None


def _last_words(pred: Pred, result: StepResult | None) -> str:
    """The predictor's last log lines (its own reason, e.g. a refused digest), not when a signal
    killed it (then the lines say nothing about why)."""
    if result is not None and result.exit_code < 0:
        return ""
    lines = [ln for ln in log_tail(pred.proc.spec.log_path, 6).splitlines()
             if ln.strip() and not (ln.startswith("[orchestrator] ") and " starting " in ln)][-3:]
    return (": " + " | ".join(lines)) if lines else ""


# ---------------------------------------------------------------------- who starts the manager
def manager_alive(records: DeploymentRecords) -> bool:
    from orchestrator.run.reaper import pid_alive

    row = records.manager()
    return bool(row and row["pid"] and pid_alive(row["pid"]) and (row["heartbeat_at"] or 0) > time.time() - STALE)


def ensure_running(home: Path, records: DeploymentRecords) -> int | None:
    """Start the store's deployment manager unless a live one heartbeats; its pid when started.
    Needed only while some deployment is open (a manager with nothing to do exits)."""
    if manager_alive(records) or not records.active_count():
        return None
    from orchestrator.run.background import spawn_detached

    return spawn_detached(Path(home), ["_deployments"], Path(home) / "deployments" / "manager.log",
                          "the deployment manager")
