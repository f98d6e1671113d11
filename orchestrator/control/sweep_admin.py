"""Sweeps as resources: start one in the background, stop it, list them, their JSON shape.

Owns: what the CLI and the REST routes need besides running a sweep: the REST create (validate a
``Sweep`` document through the same caps, safe loader and schema as files, store it, and start the
hidden ``orchestrator _sweep`` in its own session so it outlives the server), the background
process's body, the stop request (the running engine polls for it), listing, id prefixes, and the
JSON of a sweep and its trials (camelCase, AI API style). The engine is
:mod:`orchestrator.control.sweeps`. Must not import api or cli.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.control.sweeps import INTERRUPTED, create_sweep, run_sweep
from orchestrator.errors import (
    Conflict,
    NotFound,
    StoreError,
    UsageError,
    ValidationFailed,
)
from orchestrator.spec.sweep import SweepSpec
from orchestrator.spec.sweep_kind import from_document
from orchestrator.store.sweep_records import SweepRecords, SweepRow, TrialRow

if TYPE_CHECKING:
    from orchestrator.control.service import Service


def stop_sweep(service: Service, sweep_id: str) -> SweepRow:
    """Ask the sweep's process to stop it (running trials are stopped, no new ones start)."""
    records = SweepRecords(service.store)
    row = records.get(service.rg, sweep_id)
    if row.status not in ("PENDING", "RUNNING"):
        raise Conflict(f"sweep {sweep_id} is {row.status}; only a PENDING or RUNNING sweep can be stopped")
    records.request_stop(service.rg, sweep_id)
    if row.status == "PENDING" or not row.owner_pid:
        records.finish(service.rg, sweep_id, "STOPPED", "stopped by request")
    return records.get(service.rg, sweep_id)


def sweep_json(service: Service, sweep_id: str, *, trials: bool = True) -> dict[str, Any]:
    """The JSON shape of a sweep (CLI ``--json`` and REST)."""
    records = SweepRecords(service.store)
    row = records.get(service.rg, sweep_id)
    spec = from_document(row.document, row.name)
    rows = records.trials(service.rg, sweep_id)
    out: dict[str, Any] = {
        "id": row.id, "name": row.name, "status": row.status, "statusMessage": row.status_message,
        "targetStatus": row.target_status, "createdAt": row.created_at, "modifiedAt": row.modified_at,
        "startTime": row.start_time, "completionTime": row.completion_time, "seed": row.seed,
        "configurationId": row.configuration_id, "executableId": spec.trial.executable_id,
        "objective": {"primaryMetric": spec.objective.primary_metric, "goal": spec.objective.goal},
        "samplingAlgorithm": spec.sampling.algorithm, "bestExecutionId": row.best_execution_id,
        "bestValue": row.best_value, "modelVersion": row.model_version, "trialCount": len(rows),
        "document": row.document, "source": row.source}
    if trials:
        out["trials"] = [trial_json(t, row.best_execution_id) for t in rows]
    return out


def trial_json(t: TrialRow, best: str | None = None) -> dict[str, Any]:
    duration = (t.finished_at - t.started_at) if t.finished_at and t.started_at else None
    return {"trial": t.trial, "executionId": t.execution_id, "status": t.status, "parameters": t.parameters,
            "objective": t.objective, "reports": len(t.reports), "statusMessage": t.status_message,
            "startedAt": _iso(t.started_at), "finishedAt": _iso(t.finished_at), "duration": duration,
            "best": t.execution_id == best, "interrupted": t.message == INTERRUPTED}


def _iso(epoch: float | None) -> str | None:
    """An epoch time in the API's wire format (ISO 8601 UTC, as ``now_iso``)."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def list_sweeps(service: Service, *, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
    records = SweepRecords(service.store)
    return [sweep_json(service, r.id, trials=False) for r in records.list(service.rg, limit=limit, offset=offset)]


def resolve_sweep_id(service: Service, text: str) -> str:
    """A full sweep id from an unambiguous prefix."""
    ids = SweepRecords(service.store).ids_with_prefix(service.rg, text)
    if text in ids or len(ids) == 1:
        return text if text in ids else ids[0]
    if not ids:
        raise NotFound(f"sweep {text!r} not found", hint="list them with: orchestrator sweeps list")
    raise UsageError(f"sweep id prefix {text!r} is ambiguous", hint="give more characters")


def count_sweeps(service: Service) -> int:
    return SweepRecords(service.store).count(service.rg)


def start_sweep(service: Service, document: bytes, name: str = "request") -> SweepRow:
    """The REST create: validate a ``Sweep`` document (bytes: JSON or YAML, through the same caps,
    safe loader and schema as files), store the sweep and start it in a detached process."""
    from orchestrator.spec import validate_text

    res = validate_text(document, name)
    if res.errors:
        raise ValidationFailed(res.errors)
    if len(res.sweeps) != 1:
        raise UsageError(f"expected one Sweep document, found {len(res.sweeps)}",
                         hint="apiVersion: orchestrator/v1, kind: Sweep")
    return _spawn(service, create_sweep(service, res.sweeps[0]))


def restart_sweep(service: Service, sweep_id: str) -> SweepRow:
    """The REST resume (``targetStatus: RUNNING``): continue a sweep whose process ended, in a new
    background process; finished trials stay, as with ``sweeps resume``."""
    from orchestrator.run.reaper import pid_alive

    records = SweepRecords(service.store)
    row = records.get(service.rg, sweep_id)
    if row.status == "COMPLETED":
        raise Conflict(f"sweep {sweep_id} is COMPLETED; nothing to resume")
    if row.status in ("PENDING", "RUNNING") and (row.owner_pid is None or pid_alive(row.owner_pid)):
        raise Conflict(f"sweep {sweep_id} is {row.status}", hint="only a sweep whose process ended can be resumed")
    records.pending(service.rg, sweep_id)
    return _spawn(service, records.get(service.rg, sweep_id))


def _spawn(service: Service, row: SweepRow) -> SweepRow:
    """Start ``orchestrator _sweep ID`` in its own session (it outlives the server)."""
    from orchestrator.run.background import spawn_detached

    env = {"ORCHESTRATOR_SWEEP_TRACKING_BASE": service.tracking_base} if service.tracking_base else None
    try:
        spawn_detached(service.home, ["_sweep", "--rg", service.rg, row.id],
                       service.home / "runners" / f"sweep-{row.id}.log", f"sweep {row.id}", env)
    except StoreError as exc:
        SweepRecords(service.store).finish(service.rg, row.id, "DEAD", str(exc))
        return SweepRecords(service.store).get(service.rg, row.id)
    return row


def synced_starter(home: Path, tracking_base: str | None = None) -> Callable[[str, SweepSpec, str], str]:
    """What git sync calls to start a synced ``Sweep`` (:data:`orchestrator.control.sweep_sync.Start`):
    check and store it in the application's group on a connection of its own (the sync may run on
    a worker thread), start its background process, return its id."""
    def start(rg: str, spec: SweepSpec, source: str) -> str:
        from orchestrator.control.service import Service

        svc = Service(home, rg, reap=False)
        svc.tracking_base = tracking_base
        try:
            return _spawn(svc, create_sweep(svc, spec, source=source)).id
        finally:
            svc.close()
    return start


def run_background(service: Service, sweep_id: str) -> SweepRow:
    """The body of the hidden ``_sweep`` command: run a PENDING sweep the API created."""
    row = SweepRecords(service.store).get(service.rg, sweep_id)
    if row.status != "PENDING" or row.target_status == "STOPPED":
        return row  # stopped (or started elsewhere) before this process got to it
    service.tracking_base = os.environ.get("ORCHESTRATOR_SWEEP_TRACKING_BASE", service.tracking_base)
    return run_sweep(service, sweep_id=sweep_id)
