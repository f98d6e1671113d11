"""What the dashboard changes, and the schedule view: stop, resume and rerun an execution, move a
model alias; a schedule's next slots and its past slots with outcome and reason.

Owns: the background variants the web dashboard needs (a resumed execution runs in its own
detached runner, as API-submitted ones do, reusing its parent's completed steps; a rerun submits
the same configuration again), over the same use cases as the CLI and the REST API
(:mod:`orchestrator.control.resources`, :mod:`orchestrator.control.registry`). Must not import
api or cli.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from orchestrator.control import registry, resources
from orchestrator.errors import StoreError, UsageError
from orchestrator.model import Execution, Status

if TYPE_CHECKING:
    from orchestrator.control.service import Service

NEXT_SLOTS = 5
PAST_SLOTS = 50


def stop(svc: Service, execution_id: str) -> Execution:
    """Ask the execution's runner to stop (REST ``PATCH targetStatus=STOPPED``)."""
    return resources.stop(svc, execution_id)


def rerun(svc: Service, execution_id: str) -> Execution:
    """A new execution of the same configuration (every step runs again), in the background."""
    ex = svc.store.get_execution(svc.rg, execution_id)
    return resources.submit(svc, ex.configuration_id)


def resume(svc: Service, execution_id: str) -> Execution:
    """A new execution linked to ``execution_id`` that runs only the steps that did not complete,
    started by a detached runner (the server may exit meanwhile)."""
    ex, _plan, _reuse, _force = svc.plan_resume(execution_id)
    return start_detached(svc, ex)


def start_detached(svc: Service, ex: Execution) -> Execution:
    """Start a created execution's runner detached (it outlives the server); DEAD if it cannot."""
    from orchestrator.control import tokens
    from orchestrator.run.background import spawn_runner

    env = tokens.tracking_env(svc.store, svc.rg, ex.id, svc.tracking_base) if svc.tracking_base else None
    try:
        pid = spawn_runner(svc.home, svc.rg, ex.id, env)
    except StoreError as exc:
        svc.store.set_status(svc.rg, ex.id, Status.DEAD, exc.message)
    else:
        svc.store.heartbeat(svc.rg, ex.id, pid)
    return svc.store.get_execution(svc.rg, ex.id)


def move_alias(svc: Service, model: str, alias: str, version: int) -> int | None:
    """Point ``alias`` of ``model`` at ``version``; the version it named before."""
    registry.check_name(model)
    svc.store.get_model_version(svc.rg, model, version)  # NotFound for an unknown version or model
    return registry.set_alias(svc.store, svc.rg, model, alias, version)


def schedule_view(svc: Service, schedule_id: str, now: datetime | None = None) -> dict[str, Any]:
    """A schedule, its next slots (none while inactive), its past slots (newest first) with their
    outcome, reason and execution, and the status of those executions."""
    from orchestrator.control.scheduling import to_schedule
    from orchestrator.plan import cron

    row = svc.store.get_schedule(svc.rg, schedule_id)
    now = now or datetime.now(timezone.utc)
    upcoming: list[str] = []
    problem = ""
    if row["status"] == "ACTIVE":
        try:
            sched = to_schedule(row)
            for days in (1 / 24, 1, 7, 31, 366):  # the first window holding enough slots
                found = cron.slots_between(sched, now, now + timedelta(days=days), limit=10_000)
                upcoming = [cron.format_slot(t) for t in found[:NEXT_SLOTS]]
                if len(found) >= NEXT_SLOTS:
                    break
        except (cron.ScheduleError, UsageError, ValueError) as exc:
            problem = str(exc)
    runs = {slot: (eid, status) for slot, eid, status in svc.store.schedule_slot_executions(svc.rg, schedule_id)}
    past = []
    for s in reversed(svc.store.slot_records(svc.rg, schedule_id)[-PAST_SLOTS:]):
        eid, status = runs.get(s["slot"], (s["execution_id"], None))
        past.append({**s, "execution_id": eid, "execution_status": status})
    recorded = {p["slot"] for p in past}
    for slot, (eid, status) in sorted(runs.items(), reverse=True)[:PAST_SLOTS]:
        if slot and slot not in recorded:
            past.append({"slot": slot, "outcome": "started", "reason": None, "execution_id": eid,
                         "execution_status": status, "decided_at": None})
    past.sort(key=lambda p: p["slot"] or "", reverse=True)
    return {"row": row, "next": upcoming, "past": past[:PAST_SLOTS], "problem": problem}
