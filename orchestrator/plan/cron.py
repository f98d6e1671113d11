"""Pure core of the cron scheduler: which slots a schedule has, which are due now, which were missed.

Owns: the ``Schedule`` value (cron and zone checks: :mod:`orchestrator.spec.cron`), slot enumeration across DST, the
catch-up policy after downtime, backfill ranges, the overlap (concurrency) decision, and the
``Clock`` seam. No I/O, no sleeping, no store: ``service`` feeds it a clock reading and the last
slot it recorded, and writes what comes back (one execution per ``(schedule, slot)`` is the
store's UNIQUE constraint, not ours). Must not import anything from the package except
:mod:`orchestrator.errors` and :mod:`orchestrator.spec.cron`; stdlib, ``croniter`` and ``zoneinfo`` only.

Decisions (croniter 7.0.0 behaviour verified by probing it; see the tests):

* **Cron**: 5 fields (minute hour day-of-month month day-of-week, POSIX crontab, which AI Core's
  docs link to) or 6 fields with **seconds first** (Quartz / Spring / robfig ``WithSeconds``),
  i.e. croniter's ``second_at_beginning=True``; croniter's own default reads a 6th field as
  seconds *last*. AI Core's docs show ``"0 * * * *"`` and ``"0 * * * * *"`` both as "hourly",
  which no seconds reading makes true, so we pick the common convention and document it. The
  ``@hourly``-style aliases are accepted; 7 fields (year), and croniter's ``R`` (random: two
  schedulers would disagree on the slots) and ``H`` (hashed) are refused. Expressions that can
  never fire (``0 0 30 2 *``) are refused through croniter's ``strict`` mode.
* **Slots** are UTC instants (``microsecond == 0``). We ask croniter only for *naive wall-clock*
  matches (calendar arithmetic, no zone) and map each wall time to instants ourselves, because
  croniter's own zone handling fires a fixed-time job twice on the fall-back day
  (``30 2 * * *`` gives 02:30+02:00 and 02:30+01:00). Mapping rules:
  - a wall time that exists once is one slot;
  - a repeated wall time (fall back) is two slots if the hour field covers all 24 hours
    (an interval job: ``0 * * * *`` runs 25 times that day), else one, at the first occurrence;
  - a skipped wall time (spring forward) is dropped for an every-hour job (23 runs), and for a
    fixed-hour job becomes one slot at the first instant after the gap, as Vixie/Debian cron
    do (``30 2 * * *`` runs at 03:00 CEST on 2025-03-30; croniter returns the same instant).
  Because the mapping depends only on the wall time, the slot set never depends on how a range
  is split into calls: two schedulers ticking at different phases compute identical slots.
* **Windows**: ``slots_between`` is ``after < t <= until`` and honours ``start <= t < end``.
* **Catch-up** (``due``): a slot no older than ``grace`` (60 s) is on time. ``none`` runs on-time
  slots only; ``latest`` runs the on-time slots, or else the newest missed one; ``all`` runs the
  newest ``max_catchup``. Every other slot in the window is returned as skipped, to be recorded.
  ``last_slot=None`` means never ran: from ``start`` if set (service should set ``start`` to the
  creation time, AI Core's default), else no history, only a slot within ``grace`` of now.
  ``now <= last_slot`` (clock stepped back) yields nothing, never a duplicate. Once ``end`` has
  passed only on-time slots run; slots missed before it come back as skipped, none vanishes.
* **Backfill** is an explicit user range ``frm <= t <= to``: it ignores status, start, end and
  catch-up, and refuses more than ``MAX_BACKFILL`` slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

from orchestrator.spec.cron import Compiled as _Compiled
from orchestrator.spec.cron import ScheduleError, validate_schedule
from orchestrator.spec.cron import compile_cron as _compile
from orchestrator.spec.cron import zone as _zone

UTC = timezone.utc
STATUSES = ("ACTIVE", "INACTIVE")
CATCHUP_POLICIES = ("none", "latest", "all")
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
DEFAULT_GRACE = timedelta(seconds=60)
MAX_BACKFILL = 10_000
_HOUR = timedelta(hours=1)
_SECOND = timedelta(seconds=1)
_EPSILON = timedelta(microseconds=1)


@dataclass(frozen=True)
class Schedule:
    """An execution schedule (AI Core ``executionSchedule`` plus our zone and policies).

    Construction validates every field, so a ``Schedule`` in hand is always usable. ``start`` and
    ``end`` must be timezone-aware and are normalised to UTC.
    """

    id: str
    cron: str
    timezone: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None
    status: str = "ACTIVE"
    catchup: str = "latest"
    max_catchup: int = 10
    concurrency: str = "Forbid"

    def __post_init__(self) -> None:
        validate_schedule(self.cron, self.timezone)
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _utc(value, name))
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ScheduleError(f"end {self.end:%Y-%m-%dT%H:%M:%SZ} is not after start "
                                f"{self.start:%Y-%m-%dT%H:%M:%SZ}", field="end")
        _one_of(self.status, STATUSES, "status")
        _one_of(self.catchup, CATCHUP_POLICIES, "catchup")
        _one_of(self.concurrency, CONCURRENCY_POLICIES, "concurrency")
        if isinstance(self.max_catchup, bool) or not isinstance(self.max_catchup, int) or self.max_catchup < 1:
            raise ScheduleError(f"maxCatchup must be an integer >= 1, got {self.max_catchup!r}",
                                field="max_catchup")


def slots_between(s: Schedule, after: datetime, until: datetime, *, limit: int | None = None) -> list[datetime]:
    """Every fire time of ``s`` with ``after < t <= until`` and ``start <= t < end``, ascending, in UTC.

    Ignores ``status`` (that is :func:`due`'s concern). ``limit`` caps the result: more slots
    than that raise :class:`ScheduleError` instead of building a huge list.
    """
    return _slots(s, _utc(after, "after"), _utc(until, "until"), clip=True, limit=limit)


def due(s: Schedule, last_slot: datetime | None, now: datetime, *,
        grace: timedelta = DEFAULT_GRACE) -> tuple[list[datetime], list[datetime]]:
    """Which slots to run now and which to record as skipped, per the catch-up policy.

    Args:
        s: the schedule.
        last_slot: the newest slot already recorded (run or skipped); ``None`` if never.
        now: the clock reading (aware).
        grace: how old a slot may be and still count as on time; keep it above the tick interval,
            or ``none`` skips slots between two ticks.

    Returns:
        ``(run, skipped)``, both ascending UTC lists, disjoint; together they are every slot in
        the window, so recording both and advancing ``last_slot`` to the newest never repeats one.
    """
    now = _utc(now, "now")
    if s.status != "ACTIVE":
        return [], []
    if last_slot is not None:
        after = _utc(last_slot, "last_slot")
        if now <= after:  # the clock stepped back (or stood still): nothing new, never a repeat
            return [], []
    elif s.start is not None:
        after = s.start - _EPSILON  # start itself is a valid slot
    else:
        after = now - grace  # never ran and no start: no history, only an on-time slot
    window = slots_between(s, after, now)
    on_time = [t for t in window if now - t <= grace]
    expired = s.end is not None and s.end <= now  # AI Core turns it INACTIVE: nothing runs late
    if s.catchup == "none" or expired:
        run = on_time
    elif s.catchup == "latest":
        run = on_time or window[-1:]
    else:
        run = window[-s.max_catchup:]
    chosen = set(run)
    return run, [t for t in window if t not in chosen]


def backfill(s: Schedule, frm: datetime, to: datetime) -> list[datetime]:
    """Slots with ``frm <= t <= to`` for an explicit backfill, whatever status, start, end and catch-up say.

    Raises:
        ScheduleError: if ``frm`` is after ``to`` or the range holds more than ``MAX_BACKFILL`` slots.
    """
    frm, to = _utc(frm, "from"), _utc(to, "to")
    if frm > to:
        raise ScheduleError(f"backfill --from {frm:%Y-%m-%dT%H:%M:%SZ} is after --to {to:%Y-%m-%dT%H:%M:%SZ}",
                            field="from")
    return _slots(s, frm - _EPSILON, to, clip=False, limit=MAX_BACKFILL)


def overlap_action(s: Schedule, running: int) -> str:
    """What to do with a due slot while ``running`` executions of ``s`` are still active.

    Returns ``"start"`` (nothing running, or ``Allow``), ``"skip"`` (``Forbid``: record the slot as
    skipped) or ``"replace"`` (``Replace``: stop the running ones, then start).
    """
    if running <= 0 or s.concurrency == "Allow":
        return "start"
    return "skip" if s.concurrency == "Forbid" else "replace"


def format_slot(slot: datetime) -> str:
    """A slot as the run parameter and API value: ``%Y-%m-%dT%H:%M:%SZ`` (AI Core client format)."""
    return _utc(slot, "slot").strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock(Protocol):
    """Where the scheduler reads the time; injected so tests can move it at will."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to; it may be set backwards to test clock steps."""

    def __init__(self, start: datetime) -> None:
        self._now = _utc(start, "start")

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = _utc(instant, "instant")

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward (or back, if negative) by ``delta`` (a timedelta or seconds); return the new time."""
        self._now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        return self._now


# ---------------------------------------------------------------- internals


def _utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ScheduleError(f"{name} must be a datetime, got {type(value).__name__}", field=name)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(f"{name} {value.isoformat()} has no time zone; give an aware time (e.g. ...Z)",
                            field=name)
    return value.astimezone(UTC)


def _one_of(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ScheduleError(f"{name} must be one of {', '.join(allowed)}, got {value!r}", field=name)


def _slots(s: Schedule, after: datetime, until: datetime, *, clip: bool, limit: int | None) -> list[datetime]:
    if clip:
        if s.start is not None and s.start - _EPSILON > after:
            after = s.start - _EPSILON
        if s.end is not None and s.end - _EPSILON < until:
            until = s.end - _EPSILON
    if until <= after:
        return []
    compiled, zone = _compile(s.cron), _zone(s.timezone)
    low, high = _offset_range(zone, after, until)
    # Every wall time whose instant can fall in (after, until] lies in this naive window.
    walls = _walls(compiled, after.replace(tzinfo=None) + low, until.replace(tzinfo=None) + high,
                   limit=limit)
    found = {t for w in walls for t in _instants(w, zone, compiled.every_hour) if after < t <= until}
    if limit is not None and len(found) > limit:
        raise ScheduleError(f"range holds more than {limit} slots; narrow it", field="range")
    return sorted(found)


def _offset_range(zone: ZoneInfo, after: datetime, until: datetime) -> tuple[timedelta, timedelta]:
    """Smallest and largest UTC offset in force during [after, until] (sampled hourly: no regime is shorter)."""
    offsets: set[timedelta] = set()
    instant = after
    while instant < until:
        offsets.add(instant.astimezone(zone).utcoffset() or timedelta(0))
        instant += _HOUR
    offsets.add(until.astimezone(zone).utcoffset() or timedelta(0))
    return min(offsets), max(offsets)


def _walls(compiled: _Compiled, low: datetime, high: datetime, *, limit: int | None) -> list[datetime]:
    """Naive wall times ``low <= w <= high`` the expression matches (croniter on naive times: no zone logic)."""
    out: list[datetime] = []
    wall = _next_wall(compiled, low - _SECOND)
    while wall <= high:
        if wall >= low:
            out.append(wall)
            # Stop a runaway early; walls and slots differ only by a DST hour, so 2x is safe slack.
            if limit is not None and len(out) > 2 * limit + 8:
                raise ScheduleError(f"range holds more than {limit} slots; narrow it", field="range")
        wall = _next_wall(compiled, wall)
    return out


@lru_cache(maxsize=8192)
def _next_wall(compiled: _Compiled, wall: datetime) -> datetime:
    """First matching naive wall time strictly after ``wall``.

    Memoised: a scheduler ticking every few seconds asks the same question (the wall after its
    last slot) thousands of times, and croniter takes ~40 us per answer.
    """
    with compiled.lock:
        compiled.iterator.set_current(wall, force=True)
        return compiled.iterator.get_next(datetime)


def _instants(wall: datetime, zone: ZoneInfo, every_hour: bool) -> list[datetime]:
    """The UTC instants a matching wall time stands for (see the module docstring for the rules)."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    early = first.astimezone(UTC)
    if first.utcoffset() == second.utcoffset():
        return [early]
    late = second.astimezone(UTC)
    if early.astimezone(zone).replace(tzinfo=None) == wall:  # exists twice: the repeated hour
        return [early, late] if every_hour else [early]
    # In a gap, fold=0 reads the wall with the old offset and fold=1 with the new one (PEP 495),
    # so the transition instant lies in (late, early].
    return [] if every_hour else [_transition(zone, late, early)]


def _transition(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """First whole second in (before, after] at which the zone already uses ``after``'s offset."""
    target = after.astimezone(zone).utcoffset()
    while after - before > _SECOND:
        middle = before + timedelta(seconds=(after - before) // _SECOND // 2)
        if middle.astimezone(zone).utcoffset() == target:
            after = middle
        else:
            before = middle
    return after
