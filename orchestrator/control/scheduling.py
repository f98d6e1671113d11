"""Scheduler use case: stored execution schedules + a clock -> executions, one per (schedule, slot).

Owns: one scheduler tick over every resource group (catch-up through :func:`cron.due`, the
concurrency policy through :func:`cron.overlap_action`, the slot handed to the run as a
parameter), backfill, the record of every slot that did not run and why (``schedule_slots``),
and the standalone loop (SIGTERM or Ctrl-C end it after the tick in progress). Starting a run
is a callback (``Service.submit`` in production), so this module never spawns anything itself.

Why no duplicates and no silent miss with several schedulers: a slot is *decided* inside one
``BEGIN IMMEDIATE`` transaction that re-reads ``last_slot``, records the decision (``claimed``
or ``skipped`` with the reason) and advances ``last_slot``; a second scheduler then finds
nothing due. The executions' UNIQUE (schedule, slot) index backs this up against backfill and
anything else that submits. A claimed slot whose submit fails is recorded ``failed``. The submit
runs after the claim commits, so a scheduler that dies in between leaves the slot ``claimed``:
every tick re-submits claims older than :data:`CLAIM_GRACE` that have no execution (and records
``started`` for those whose execution was created before the crash) — late, but never missed,
never twice.

Sits below :mod:`orchestrator.control.service`, above :mod:`orchestrator.plan.cron` and the store; must
not import service, runner, cli, commands or api.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from orchestrator.errors import Conflict, NotFound, OrchestratorError, UsageError
from orchestrator.model import Execution
from orchestrator.plan import cron
from orchestrator.plan.cron import Clock, Schedule, ScheduleError, format_slot
from orchestrator.spec.schedule import parse_instant
from orchestrator.store.sqlite import SqliteStore

log = logging.getLogger(__name__)
HORIZON = timedelta(days=1)  # the newest missed slots come from this far back at most
CLAIM_GRACE = timedelta(seconds=60)  # a claim this old with no execution lost its scheduler (wall clock)


class Submit(Protocol):
    """Start a run of a stored configuration in resource group ``rg`` (``Service.submit``)."""

    def __call__(self, rg: str, configuration_id: str, *, schedule_id: str, slot: str,
                 extra_parameters: Sequence[tuple[str, str]], commit_sha: str | None) -> Execution: ...


@dataclass
class TickReport:
    """What one tick decided: ``(schedule id, slot, execution id or reason)`` triples."""

    started: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    conflicts: int = 0  # slots another scheduler or a backfill had already started
    recovered: int = 0  # claimed slots whose scheduler died before starting them, started now


def to_schedule(row: dict[str, Any]) -> Schedule:
    """A stored schedule row as the pure :class:`Schedule`; ``start`` defaults to the creation time
    (AI Core's default), so a new schedule never reaches back before it existed."""
    start = parse_instant(row["start"]) if row.get("start") else parse_instant(row["created_at"])
    end = parse_instant(row["end"]) if row.get("end") else None
    return Schedule(id=row["id"], cron=row["cron"], timezone=row.get("timezone") or "UTC", start=start, end=end,
                    status=row.get("status") or "ACTIVE", catchup=row.get("catchup") or "latest",
                    max_catchup=int(row.get("max_catchup") or 1), concurrency=row.get("concurrency") or "Allow")


def tick(store: SqliteStore, clock: Clock, submit: Submit, *,
         grace: timedelta = cron.DEFAULT_GRACE) -> TickReport:
    """Decide and start every due slot of every active schedule in every resource group, once
    (and first any slot an earlier scheduler claimed but never started, see :func:`recover_claims`)."""
    report = TickReport()
    now = clock.now()
    for rg in store.resource_groups():
        recover_claims(store, rg, submit, report)
        for row in store.due_candidates(rg):
            try:
                _tick_one(store, rg, row, now, submit, grace, report)
            except ScheduleError as exc:  # a row written before validation existed: say so, go on
                log.warning("schedule %s in %s is invalid: %s", row["id"], rg, exc.message)
    return report


def recover_claims(store: SqliteStore, rg: str, submit: Submit, report: TickReport,
                   older_than: timedelta = CLAIM_GRACE) -> None:
    """Finish slots left ``claimed`` for longer than ``older_than`` (by the wall clock, like the
    record's ``decided_at``): the scheduler died after the claim. A slot whose execution exists is
    recorded ``started``; one of a schedule deactivated or deleted since is recorded ``skipped``;
    any other is submitted now (a racing scheduler gets a Conflict from the UNIQUE index)."""
    cutoff = (datetime.now(timezone.utc) - older_than).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for claim in store.stale_claims(rg, cutoff):
        sid, slot = claim["schedule_id"], claim["slot"]
        if claim["execution_id"]:
            store.set_slot(rg, sid, slot, "started", "", claim["execution_id"])
            continue
        if not claim["live"]:
            store.set_slot(rg, sid, slot, "skipped", "claimed, but the schedule was deactivated or deleted "
                                                     "before its run was started")
            continue
        log.warning("schedule %s slot %s was claimed at %s but never started (the scheduler stopped); "
                    "starting it now", sid, slot, claim["decided_at"])
        report.recovered += 1
        _start(store, rg, store.schedule_row(rg, sid), slot, submit, report)


def _due(row: dict[str, Any], now: datetime,
         grace: timedelta) -> tuple[Schedule, list[datetime], list[datetime], str | None]:
    """:func:`cron.due` over at most :data:`HORIZON` (an hour for 6-field crons) before ``now``.

    After a long downtime the window would hold every missed slot (a year of a per-minute cron
    is 500k); catch-up only ever runs the newest ones, so older slots are reported as one range
    (the fourth value, ``"from..to"``) instead of being enumerated.
    """
    s = to_schedule(row)
    last = parse_instant(row["last_slot"]) if row.get("last_slot") else None
    since = last or (s.start - timedelta(microseconds=1) if s.start else None)
    if since is not None and s.end is not None and since >= s.end:
        return s, [], [], None  # ended, and every slot before the end is accounted for
    horizon = HORIZON if len(s.cron.split()) != 6 else timedelta(hours=1)
    older = None
    if since is not None and since < now - 2 * horizon:  # 2x: clamping once per long gap, not per tick
        last = min(now - horizon, s.end) if s.end else now - horizon
        try:  # limit=0: any slot at all raises after a few croniter steps, never a full enumeration
            missed = bool(cron.slots_between(s, since, last, limit=0))
        except ScheduleError:
            missed = True
        older = f"{format_slot(since + timedelta(seconds=1))}..{format_slot(last)}" if missed else None
    run, skipped = cron.due(s, last, now, grace=grace)
    return s, run, skipped, older


def _tick_one(store: SqliteStore, rg: str, row: dict[str, Any], now: datetime, submit: Submit,
              grace: timedelta, report: TickReport) -> None:
    if not any(_due(row, now, grace)[1:]):  # cheap read-only pre-check: most ticks write nothing
        return
    fire: list[str] = []
    with store.transaction():
        row = store.schedule_row(rg, row["id"])  # fresh, under the write lock
        if row["deleted_at"] or row["status"] != "ACTIVE":
            return
        s, run, skipped, older = _due(row, now, grace)
        if not run and not skipped and not older:
            return  # another scheduler decided these slots first
        why = f"missed while no scheduler ran; catchup={s.catchup}" + (
            f", maxCatchup={s.max_catchup}" if s.catchup == "all" else "")
        notes = [(format_slot(t), "skipped", why) for t in skipped]
        if older:
            notes.insert(0, (older, "skipped", why + f"; every slot in this range (older than {HORIZON} "
                                                      "before the tick, not listed one by one)"))
        running = store.open_schedule_executions(rg, s.id)
        for t in run:
            action = cron.overlap_action(s, len(running) + len(fire) if s.concurrency == "Forbid" else len(running))
            if action == "skip":
                notes.append((format_slot(t), "skipped", "concurrency=Forbid: "
                              + (f"execution {running[0]} is still running" if running else "an earlier slot runs")))
            else:
                fire.append(format_slot(t))
        store.record_slots(rg, s.id, [*notes, *[(slot, "claimed", "") for slot in fire]])
        newest = max([*run, *skipped]) if run or skipped else None
        store.advance_last_slot(rg, s.id, format_slot(newest) if newest else older.split("..")[1])  # type: ignore[union-attr]
    report.skipped.extend((s.id, slot, reason) for slot, _, reason in notes)
    if fire and s.concurrency == "Replace":
        for eid in running:
            try:
                store.request_stop(rg, eid)
            except (Conflict, NotFound):
                pass  # it ended meanwhile
    for slot in fire:
        _start(store, rg, row, slot, submit, report)


def _start(store: SqliteStore, rg: str, row: dict[str, Any], slot: str, submit: Submit,
           report: TickReport) -> Execution | None:
    """Submit one slot; record ``started``/``failed``. A Conflict means it already has its execution."""
    sid = row["id"]
    extra = ((row["slot_parameter"], slot),) if row.get("slot_parameter") else ()
    try:
        cfg = store.get_configuration(rg, row["configuration_id"])
        commit, gone = store.executable_origin(rg, cfg.executable_id)
        if gone:
            raise NotFound(f"executable {cfg.executable_id!r} was removed from its repository at {gone}")
        ex = submit(rg, cfg.id, schedule_id=sid, slot=slot, extra_parameters=extra, commit_sha=commit)
    except Conflict:
        report.conflicts += 1
        store.set_slot(rg, sid, slot, "started", "started by another scheduler or a backfill",
                       store.slot_execution(rg, sid, slot))
        return None
    except OrchestratorError as exc:
        report.failed.append((sid, slot, exc.message))
        store.set_slot(rg, sid, slot, "failed", exc.message)
        log.warning("schedule %s slot %s not started: %s", sid, slot, exc.message)
        return None
    store.set_slot(rg, sid, slot, "started", "", ex.id)
    report.started.append((sid, slot, ex.id))
    return ex


def backfill(store: SqliteStore, rg: str, schedule_id: str, frm: datetime, to: datetime,
             submit: Submit, *, even_if_inactive: bool = False) -> TickReport:
    """Start every slot with ``frm <= t <= to`` that has no execution yet (start, end and catch-up
    are ignored; an existing slot is a conflict, never a second run). An INACTIVE schedule is
    refused (UsageError) unless ``even_if_inactive``: deactivating promised no new runs."""
    row = store.schedule_row(rg, schedule_id)
    if row["status"] != "ACTIVE" and not even_if_inactive:
        raise UsageError(f"schedule {schedule_id} ({row['name']}) is {row['status']}: a backfill would start its "
                         "slots although it was deactivated",
                         hint=f"orchestrator schedules activate {schedule_id}, or backfill --even-if-inactive")
    report = TickReport()
    for t in cron.backfill(to_schedule(row), frm, to):
        slot = format_slot(t)
        store.record_slots(rg, schedule_id, [(slot, "claimed", "backfill")])
        _start(store, rg, row, slot, submit, report)
    return report


def loop(store: SqliteStore, clock: Clock, submit: Submit, stop: threading.Event, interval: float = 10.0, *,
         grace: timedelta | None = None) -> None:
    """Tick every ``interval`` seconds until ``stop`` is set; errors are logged, never fatal.

    ``grace`` (default: the larger of 60 s and twice the interval) must exceed the interval, or
    the ``none`` catch-up policy would skip slots that fall between two ticks.
    """
    grace = grace or max(cron.DEFAULT_GRACE, timedelta(seconds=2 * interval))
    with signals_stop(stop):
        while not stop.is_set():
            try:
                tick(store, clock, submit, grace=grace)
            except Exception:  # noqa: BLE001 - a bad tick (store busy, disk full) must not end the loop
                log.exception("scheduler tick failed")
            stop.wait(interval)


@contextmanager
def signals_stop(stop: threading.Event) -> Iterator[None]:
    """On the main thread (the standalone ``orchestrator scheduler``), SIGTERM and SIGINT end the
    loop once the tick in progress is done, so the command exits 0 with every decided slot
    recorded; a second SIGINT interrupts at once (KeyboardInterrupt). Elsewhere (``serve`` runs the
    loop in a thread) the caller's ``stop`` is the only way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        # Set from another thread: this one may be inside ``stop.wait`` holding the event's lock.
        threading.Thread(target=stop.set, name="scheduler-stop", daemon=True).start()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig, old in previous.items():
        if old is not signal.SIG_IGN:
            signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            if old is not signal.SIG_IGN:
                signal.signal(sig, old if old is not None else signal.SIG_DFL)
