"""orchestrator.plan.cron: slots across DST, catch-up after downtime, clock steps, validation, a simulated week."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from orchestrator.errors import UsageError
from orchestrator.plan.cron import (
    MAX_BACKFILL,
    Clock,
    FakeClock,
    Schedule,
    ScheduleError,
    SystemClock,
    backfill,
    due,
    format_slot,
    overlap_action,
    slots_between,
    validate_schedule,
)

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local_day(year: int, month: int, day: int) -> tuple[datetime, datetime]:
    """(after, until) covering one Berlin calendar day: after < t <= until."""
    start = datetime(year, month, day, tzinfo=BERLIN).astimezone(UTC)
    end = (datetime(year, month, day, tzinfo=BERLIN) + timedelta(days=1)).astimezone(UTC)
    return start - timedelta(microseconds=1), end - timedelta(microseconds=1)


def berlin(slots: list[datetime]) -> list[str]:
    return [t.astimezone(BERLIN).strftime("%H:%M%z") for t in slots]


# ---------------------------------------------------------------- DST (Europe/Berlin, 2025)


def test_hourly_job_has_23_slots_on_spring_forward_day() -> None:
    slots = slots_between(Schedule("hourly", "0 * * * *", "Europe/Berlin"), *local_day(2025, 3, 30))
    assert len(slots) == 23
    assert not any(t.astimezone(BERLIN).hour == 2 for t in slots)  # 02:00-02:59 does not exist
    assert berlin(slots)[:3] == ["00:00+0100", "01:00+0100", "03:00+0200"]
    assert all(b - a == timedelta(hours=1) for a, b in zip(slots, slots[1:]))


def test_hourly_job_has_25_slots_on_fall_back_day_with_two_distinct_0200_instants() -> None:
    slots = slots_between(Schedule("hourly", "0 * * * *", "Europe/Berlin"), *local_day(2025, 10, 26))
    assert len(slots) == 25 == len(set(slots))
    twos = [t for t in slots if t.astimezone(BERLIN).hour == 2]
    assert twos == [utc(2025, 10, 26, 0, 0), utc(2025, 10, 26, 1, 0)]  # 02:00+02:00, then 02:00+01:00
    assert all(b - a == timedelta(hours=1) for a, b in zip(slots, slots[1:]))


def test_interval_jobs_skip_the_missing_hour_instead_of_moving_it() -> None:
    after, until = local_day(2025, 3, 30)
    half = slots_between(Schedule("h", "30 * * * *", "Europe/Berlin"), after, until)
    assert len(half) == 23 and berlin(half)[1:3] == ["01:30+0100", "03:30+0200"]  # no extra 03:00
    assert len(slots_between(Schedule("q", "*/15 * * * *", "Europe/Berlin"), after, until)) == 92


def test_long_range_starting_just_before_fall_back_keeps_the_repeated_hour() -> None:
    # Both ends are in summer time; the winter between them must widen the wall-clock window.
    slots = slots_between(Schedule("h", "0 * * * *", "Europe/Berlin"), utc(2025, 10, 26, 0, 50), utc(2026, 6, 1))
    assert slots[:2] == [utc(2025, 10, 26, 1, 0), utc(2025, 10, 26, 2, 0)]  # 02:00+01:00, 03:00+01:00
    assert len(slots) == len(set(slots)) == int((utc(2026, 6, 1) - utc(2025, 10, 26, 1)).total_seconds() // 3600) + 1


def test_daily_0230_runs_once_on_spring_day_right_after_the_gap() -> None:
    s = Schedule("daily", "30 2 * * *", "Europe/Berlin")
    assert slots_between(s, *local_day(2025, 3, 30)) == [utc(2025, 3, 30, 1, 0)]  # 03:00 CEST
    assert berlin(slots_between(s, *local_day(2025, 3, 29))) == ["02:30+0100"]
    assert berlin(slots_between(s, *local_day(2025, 3, 31))) == ["02:30+0200"]


def test_daily_0230_runs_once_on_fall_back_day_at_the_first_occurrence() -> None:
    s = Schedule("daily", "30 2 * * *", "Europe/Berlin")
    assert slots_between(s, *local_day(2025, 10, 26)) == [utc(2025, 10, 26, 0, 30)]  # 02:30+02:00
    # A window holding only the second 02:30 (+01:00) yields nothing: no second run.
    assert slots_between(s, utc(2025, 10, 26, 1, 0), utc(2025, 10, 26, 2, 0)) == []
    week = slots_between(s, utc(2025, 10, 22), utc(2025, 10, 29))
    assert len(week) == 7


def test_croniter_alone_fires_a_fixed_time_job_twice_on_fall_back_which_we_correct() -> None:
    """Pins the croniter 7.0.0 behaviour our wall-time mapping exists to correct."""
    it = croniter("30 2 * * *", datetime(2025, 10, 26, 0, 0, tzinfo=BERLIN))
    raw = [it.get_next(datetime).astimezone(UTC) for _ in range(2)]
    assert raw == [utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 1, 30)]


@pytest.mark.parametrize("cron", ["*/15 * * * *", "7,37 * * * *", "0 * * * 0", "59 * * * *", "30 2 * * *", "0 1-3 * * *"])
@pytest.mark.parametrize("day", [(2025, 3, 30), (2025, 10, 26)])
def test_matches_a_minute_by_minute_oracle(cron: str, day: tuple[int, int, int]) -> None:
    """Oracle: walk every UTC minute; keep it if its Berlin wall time matches (first occurrence only
    for fixed-hour jobs), plus 03:00 CEST when a fixed-hour job names the skipped 02:xx."""
    s = Schedule("o", cron, "Europe/Berlin")
    after, until = local_day(*day)
    every_hour = cron.split()[1] == "*"
    expected, t = [], after.replace(microsecond=0) + timedelta(seconds=1)
    while t <= until:
        wall = t.astimezone(BERLIN)
        if croniter.match(cron, wall.replace(tzinfo=None)) and (every_hour or wall.fold == 0):
            expected.append(t)
        t += timedelta(minutes=1)
    if day == (2025, 3, 30) and not every_hour:
        expected = sorted(set(expected) | {utc(2025, 3, 30, 1)})
    assert slots_between(s, after, until) == expected


def test_slots_do_not_depend_on_how_the_range_is_split() -> None:
    s = Schedule("q", "*/15 * * * *", "Europe/Berlin")
    after, until = utc(2025, 10, 25, 21), utc(2025, 10, 26, 4)
    whole = slots_between(s, after, until)
    parts: list[datetime] = []
    t = after
    while t < until:
        parts += slots_between(s, t, min(t + timedelta(seconds=7), until))
        t += timedelta(seconds=7)
    assert parts == whole and len(whole) == 7 * 4  # seven UTC hours...
    assert sum(t.astimezone(BERLIN).hour == 2 for t in whole) == 8  # ...of which local 02:xx twice


# ---------------------------------------------------------------- cron forms


def test_six_field_cron_reads_seconds_first() -> None:
    s = Schedule("six", "30 0 * * * *")
    assert slots_between(s, utc(2025, 1, 1), utc(2025, 1, 1, 2, 59)) == [
        utc(2025, 1, 1, 0, 0, 30), utc(2025, 1, 1, 1, 0, 30), utc(2025, 1, 1, 2, 0, 30)]
    every_20s = slots_between(Schedule("s", "*/20 * * * * *"), utc(2025, 1, 1), utc(2025, 1, 1, 0, 1))
    assert [t.second for t in every_20s] == [20, 40, 0]


def test_six_field_with_zero_seconds_equals_five_field() -> None:
    after, until = local_day(2025, 10, 26)
    five = slots_between(Schedule("a", "0 * * * *", "Europe/Berlin"), after, until)
    six = slots_between(Schedule("b", "0 0 * * * *", "Europe/Berlin"), after, until)
    assert five == six and len(six) == 25


def test_alias_is_accepted() -> None:
    assert slots_between(Schedule("a", "@daily"), utc(2025, 1, 1), utc(2025, 1, 3)) == [utc(2025, 1, 2), utc(2025, 1, 3)]


@pytest.mark.parametrize("cron", [
    "", "   ", "* * * *", "* * * * * * 2026", "61 * * * *", "0 25 * * *", "*/0 * * * *",
    "0 0 30 2 *",            # can never fire
    "0 0 0 1 *",             # day 0: the example in AI Core's own OpenAPI spec
    "R * * * *", "H * * * *", "0 H(0-3) * * *",  # random / hashed: schedulers would disagree
    "every day", "x" * 300,
])
def test_invalid_cron_is_a_schedule_error(cron: str) -> None:
    with pytest.raises(ScheduleError) as info:
        validate_schedule(cron, "UTC")
    assert info.value.field == "cron"
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2
    assert "cron" in str(info.value)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/berlin", "../../etc/passwd", "/etc/localtime", "", "CEST"])
def test_unknown_zone_is_a_schedule_error(zone: str) -> None:
    with pytest.raises(ScheduleError) as info:
        validate_schedule("0 * * * *", zone)
    assert info.value.field == "timezone"
    assert "zone" in str(info.value)


def test_month_and_weekday_names_are_not_mistaken_for_hash_or_random() -> None:
    validate_schedule("0 9 * mar-apr thu,fri", "UTC")
    validate_schedule("0 0 9 * * thu", "America/New_York")


@pytest.mark.parametrize("kwargs, field", [
    ({"status": "PAUSED"}, "status"),
    ({"catchup": "some"}, "catchup"),
    ({"concurrency": "forbid"}, "concurrency"),
    ({"max_catchup": 0}, "max_catchup"),
    ({"max_catchup": True}, "max_catchup"),
    ({"start": datetime(2025, 1, 1)}, "start"),
    ({"start": utc(2025, 1, 2), "end": utc(2025, 1, 1)}, "end"),
    ({"timezone": "Nowhere/Land"}, "timezone"),
])
def test_schedule_fields_are_validated(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ScheduleError) as info:
        Schedule("s", "0 * * * *", **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_start_and_end_are_normalised_to_utc() -> None:
    s = Schedule("s", "0 * * * *", start=datetime(2025, 6, 1, 12, tzinfo=BERLIN))
    assert s.start == utc(2025, 6, 1, 10) and s.start.tzinfo is UTC


# ---------------------------------------------------------------- start / end


def test_start_is_inclusive_and_end_exclusive() -> None:
    s = Schedule("s", "0 * * * *", start=utc(2025, 1, 1, 10), end=utc(2025, 1, 1, 13))
    assert slots_between(s, utc(2025, 1, 1), utc(2025, 1, 2)) == [utc(2025, 1, 1, 10), utc(2025, 1, 1, 11),
                                                                    utc(2025, 1, 1, 12)]


def test_end_in_the_past_means_nothing_runs() -> None:
    s = Schedule("s", "*/5 * * * *", start=utc(2025, 1, 1), end=utc(2025, 1, 2), catchup="all")
    assert due(s, utc(2025, 1, 1, 23, 55), utc(2025, 3, 1, 12, 0, 10)) == ([], [])
    # Slots missed before the end are still accounted for (recorded as skipped), never run late.
    assert due(s, utc(2025, 1, 1, 23, 40), utc(2025, 3, 1, 12, 0, 10)) == (
        [], [utc(2025, 1, 1, 23, 45), utc(2025, 1, 1, 23, 50), utc(2025, 1, 1, 23, 55)])
    run, skipped = due(s, None, utc(2025, 3, 1, 12, 0, 10))
    assert run == [] and len(skipped) == 288
    assert slots_between(s, utc(2025, 2, 1), utc(2025, 3, 1)) == []
    # A slot just before the end, seen within grace just after it, is on time and still runs.
    late_tick = utc(2025, 1, 2, 0, 0, 20)
    assert due(s, utc(2025, 1, 1, 23, 50), late_tick, grace=timedelta(minutes=10)) == ([utc(2025, 1, 1, 23, 55)], [])
    assert due(s, utc(2025, 1, 1, 23, 50), late_tick) == ([], [utc(2025, 1, 1, 23, 55)])


def test_start_in_the_future_means_nothing_is_due_yet() -> None:
    s = Schedule("s", "*/5 * * * *", start=utc(2025, 1, 1, 12))
    assert due(s, None, utc(2025, 1, 1, 11, 55, 5)) == ([], [])
    assert due(s, None, utc(2025, 1, 1, 12, 0, 5)) == ([utc(2025, 1, 1, 12)], [])


# ---------------------------------------------------------------- catch-up after 55 minutes of downtime

SLOTS_10_05_TO_10_55 = [utc(2025, 1, 1, 10, m) for m in range(5, 60, 5)]  # 11 slots missed


@pytest.mark.parametrize("policy, max_catchup, now, run, skipped", [
    # back at 10:55:30: the 10:55 slot is on time (30 s <= 60 s grace)
    ("none", 10, utc(2025, 1, 1, 10, 55, 30), SLOTS_10_05_TO_10_55[-1:], SLOTS_10_05_TO_10_55[:-1]),
    ("latest", 10, utc(2025, 1, 1, 10, 55, 30), SLOTS_10_05_TO_10_55[-1:], SLOTS_10_05_TO_10_55[:-1]),
    ("all", 10, utc(2025, 1, 1, 10, 55, 30), SLOTS_10_05_TO_10_55[1:], SLOTS_10_05_TO_10_55[:1]),
    ("all", 20, utc(2025, 1, 1, 10, 55, 30), SLOTS_10_05_TO_10_55, []),
    # back at 10:57:30: even 10:55 is late (150 s)
    ("none", 10, utc(2025, 1, 1, 10, 57, 30), [], SLOTS_10_05_TO_10_55),
    ("latest", 10, utc(2025, 1, 1, 10, 57, 30), SLOTS_10_05_TO_10_55[-1:], SLOTS_10_05_TO_10_55[:-1]),
    ("all", 3, utc(2025, 1, 1, 10, 57, 30), SLOTS_10_05_TO_10_55[-3:], SLOTS_10_05_TO_10_55[:-3]),
])
def test_55_minutes_of_downtime_on_a_5_minute_job(policy: str, max_catchup: int, now: datetime,
                                                  run: list[datetime], skipped: list[datetime]) -> None:
    s = Schedule("five", "*/5 * * * *", catchup=policy, max_catchup=max_catchup)
    last = utc(2025, 1, 1, 10, 0)  # ran at 10:00, went down at 10:00:30
    got_run, got_skipped = due(s, last, now)
    assert (got_run, got_skipped) == (run, skipped)
    assert sorted(got_run + got_skipped) == SLOTS_10_05_TO_10_55  # every slot accounted for, once


def test_inactive_schedule_has_nothing_due() -> None:
    s = Schedule("s", "*/5 * * * *", status="INACTIVE")
    assert due(s, utc(2025, 1, 1, 10), utc(2025, 1, 1, 11)) == ([], [])


def test_never_ran_without_start_does_not_backfill_history() -> None:
    s = Schedule("s", "*/5 * * * *")
    assert due(s, None, utc(2025, 1, 1, 10, 3)) == ([], [])
    assert due(s, None, utc(2025, 1, 1, 10, 5, 20)) == ([utc(2025, 1, 1, 10, 5)], [])


def test_never_ran_with_start_catches_up_from_start() -> None:
    s = Schedule("s", "*/5 * * * *", start=utc(2025, 1, 1, 10), catchup="latest")
    run, skipped = due(s, None, utc(2025, 1, 1, 10, 12))
    assert (run, skipped) == ([utc(2025, 1, 1, 10, 10)], [utc(2025, 1, 1, 10, 0), utc(2025, 1, 1, 10, 5)])


# ---------------------------------------------------------------- clock steps


def test_clock_stepping_backwards_gives_nothing_and_no_duplicate() -> None:
    s = Schedule("s", "*/15 * * * *", catchup="all")
    clock = FakeClock(utc(2025, 1, 1, 10, 15, 4))
    run, _ = due(s, None, clock.now())
    assert run == [utc(2025, 1, 1, 10, 15)]
    last = run[-1]
    clock.set(utc(2025, 1, 1, 9, 20))  # NTP steps the clock back almost an hour
    assert due(s, last, clock.now()) == ([], [])
    seen: list[datetime] = []
    while clock.now() < utc(2025, 1, 1, 10, 40):  # walk forward again past the old slots
        clock.advance(7)
        run, skipped = due(s, last, clock.now())
        assert skipped == []
        seen += run
        last = run[-1] if run else last
    assert seen == [utc(2025, 1, 1, 10, 30)]  # 09:30..10:15 never re-run, 10:30 runs once


def test_clock_jumping_forward_a_day_is_downtime_under_the_policy() -> None:
    s = Schedule("s", "0 * * * *", catchup="latest")
    run, skipped = due(s, utc(2025, 1, 1, 10), utc(2025, 1, 2, 10, 20))
    assert run == [utc(2025, 1, 2, 10)] and len(skipped) == 23


# ---------------------------------------------------------------- backfill, overlap, helpers


def test_backfill_is_inclusive_and_ignores_start_end_and_status() -> None:
    s = Schedule("s", "0 0 * * *", "Europe/Berlin", start=utc(2025, 6, 1), end=utc(2025, 6, 2), status="INACTIVE")
    got = backfill(s, datetime(2025, 3, 29, tzinfo=BERLIN), datetime(2025, 4, 1, tzinfo=BERLIN))
    assert berlin(got) == ["00:00+0100", "00:00+0100", "00:00+0200", "00:00+0200"]


def test_backfill_refuses_reversed_or_huge_ranges() -> None:
    s = Schedule("s", "* * * * *")
    with pytest.raises(ScheduleError):
        backfill(s, utc(2025, 1, 2), utc(2025, 1, 1))
    with pytest.raises(ScheduleError, match=str(MAX_BACKFILL)):
        backfill(s, utc(2025, 1, 1), utc(2025, 2, 1))
    assert len(backfill(s, utc(2025, 1, 1), utc(2025, 1, 1, 1))) == 61


def test_naive_times_are_refused() -> None:
    s = Schedule("s", "0 * * * *")
    with pytest.raises(ScheduleError):
        slots_between(s, datetime(2025, 1, 1), utc(2025, 1, 2))
    with pytest.raises(ScheduleError):
        due(s, None, datetime(2025, 1, 1))


@pytest.mark.parametrize("policy, running, action", [
    ("Allow", 1, "start"), ("Forbid", 0, "start"), ("Forbid", 2, "skip"), ("Replace", 1, "replace"),
])
def test_overlap_action(policy: str, running: int, action: str) -> None:
    assert overlap_action(Schedule("s", "0 * * * *", concurrency=policy), running) == action


def test_format_slot_and_clocks() -> None:
    assert format_slot(datetime(2025, 10, 26, 2, 30, tzinfo=BERLIN)) == "2025-10-26T00:30:00Z"
    clock: Clock = FakeClock(utc(2025, 1, 1))
    assert isinstance(clock, FakeClock) and clock.advance(timedelta(minutes=1)) == utc(2025, 1, 1, 0, 1)
    assert clock.advance(-30) == utc(2025, 1, 1, 0, 0, 30)
    with pytest.raises(ScheduleError):
        FakeClock(datetime(2025, 1, 1))
    real = SystemClock().now()
    assert real.tzinfo is not None and abs(real - datetime.now(UTC)) < timedelta(seconds=5)


# ---------------------------------------------------------------- a simulated week


@pytest.mark.parametrize("week_start, expected", [
    (datetime(2025, 10, 22, tzinfo=BERLIN), 7 * 96 + 4),  # contains the fall-back night
    (datetime(2025, 3, 26, tzinfo=BERLIN), 7 * 96 - 4),   # contains the spring-forward night
])
def test_simulated_week_every_slot_exactly_once_within_one_tick(week_start: datetime, expected: int) -> None:
    """Two schedulers (ticks of 7 s, different phases) run a */15 Berlin job for a week."""
    begin, finish = week_start.astimezone(UTC), (week_start + timedelta(days=7)).astimezone(UTC)
    s = Schedule("quarter", "*/15 * * * *", "Europe/Berlin", start=begin, end=finish, catchup="all")
    truth = slots_between(s, begin - timedelta(days=1), finish + timedelta(days=1))
    assert len(truth) == expected and truth[0] == begin
    tick = timedelta(seconds=7)
    results = []
    for phase in (timedelta(0), timedelta(seconds=3)):
        clock, last = FakeClock(begin + phase - tick), None
        runs: list[datetime] = []
        lateness: list[timedelta] = []
        while clock.now() < finish + tick:
            clock.advance(tick)
            run, skipped = due(s, last, clock.now())
            assert skipped == [], f"unexpected miss at {clock.now()}: {skipped}"
            lateness += [clock.now() - slot for slot in run]
            runs += run
            last = max(run) if run else last
        results.append(runs)
        assert runs == truth  # every slot, in order, exactly once
        assert all(timedelta(0) <= d < tick for d in lateness), max(lateness)
        print(f"\n{week_start:%Y-%m-%d} phase+{phase.seconds}s: {len(runs)}/{expected} slots, "
              f"{len(runs) - len(set(runs))} duplicates, {len(set(truth) - set(runs))} misses, lateness max "
              f"{max(lateness).total_seconds():.0f} s mean "
              f"{sum(lateness, timedelta()).total_seconds() / len(lateness):.2f} s")
    assert results[0] == results[1]  # both schedulers derive identical slot keys for the UNIQUE constraint
