"""The scheduler over real SQLite with an injected clock: no duplicate, no silent miss, time done right.

Executions are created (not run) by a recording ``submit`` wherever running them is not the
point; one test goes through the CLI and a real background run with the slot as a parameter.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from orchestrator.control import scheduling
from orchestrator.control.service import Service
from orchestrator.model import Execution, Status
from orchestrator.plan.cron import FakeClock, Schedule, format_slot, slots_between
from orchestrator.store.sqlite import SqliteStore
from tests.conftest import Cli, template

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
STEP = """
- name: main
  container:
    image: python:3.11
    command: [python3, -c, "import sys; open('slot.txt', 'w').write(sys.argv[1])", "{{workflow.parameters.slot}}"]
"""
PARAMS = """
- name: slot
  default: none
"""


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


class Recorder:
    """A ``scheduling.Submit`` that only creates the execution row, noting the clock reading."""

    def __init__(self, store: SqliteStore, clock: FakeClock) -> None:
        self.store, self.clock = store, clock
        self.made: list[tuple[str, datetime, Execution]] = []

    def __call__(self, rg: str, configuration_id: str, *, schedule_id: str, slot: str,
                 extra_parameters: Any, commit_sha: str | None) -> Execution:
        cfg = self.store.get_configuration(rg, configuration_id)
        ex = self.store.create_execution(rg, cfg, "/nonexistent", schedule_id=schedule_id, slot=slot,
                                         extra_parameters=extra_parameters, commit_sha=commit_sha)
        self.made.append((slot, self.clock.now(), ex))
        return ex


@pytest.fixture
def svc(tmp_path: Path) -> Service:
    s = Service(tmp_path / "home", reap=False)
    f = tmp_path / "t.yaml"
    f.write_text(template("train", STEP, params=PARAMS))
    s.register([str(f)])
    yield s
    s.close()


def make(svc: Service, cron: str, **kw: Any) -> str:
    cfg = svc.store.create_configuration("default", "c", "test-scenario", "train", [], [])
    kw.setdefault("start", "2025-06-01T09:59:00Z")
    return str(svc.store.create_schedule("default", name="s", cron=cron, configuration_id=cfg.id, **kw)["id"])


def run_ticks(svc: Service, clock: FakeClock, until: datetime, step: timedelta) -> Recorder:
    rec = Recorder(svc.store, clock)
    while clock.now() < until:
        clock.advance(step)
        scheduling.tick(svc.store, clock, rec)
    return rec


def test_two_schedulers_over_a_simulated_week_one_execution_per_slot(svc: Service, capsys: Any) -> None:
    t0, week, step = at(2025, 3, 27, 0), timedelta(days=7), timedelta(seconds=45)  # spans the spring DST day
    sid = make(svc, "*/10 * * * *", timezone="Europe/Berlin", catchup="latest", start=format_slot(t0))
    barrier = threading.Barrier(2)
    made: list[tuple[str, datetime, Execution]] = []
    conflicts: list[int] = []

    def scheduler(phase: timedelta) -> None:
        store = svc.store.clone()  # its own connection, as a second process would have
        clock = FakeClock(t0 + phase)
        rec = Recorder(store, clock)
        n = 0
        for _ in range(int(week / step)):
            barrier.wait()
            clock.advance(step)
            n += scheduling.tick(store, clock, rec).conflicts
        made.extend(rec.made)
        conflicts.append(n)
        store.close()

    threads = [threading.Thread(target=scheduler, args=(timedelta(seconds=s),)) for s in (0, 7)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - start
    expected = [format_slot(t) for t in slots_between(Schedule("x", "*/10 * * * *", "Europe/Berlin"),
                                                      t0 - timedelta(seconds=1), t0 + week)]
    rows = svc.store.schedule_slot_executions("default", sid)
    per_slot = Counter(slot for slot, _, _ in rows)
    duplicates = sum(n - 1 for n in per_slot.values())
    missing = [s for s in expected if s not in per_slot]
    late = [(when - datetime.strptime(slot, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)).total_seconds()
            for slot, when, _ in made]
    with capsys.disabled():
        print(f"\n[scheduler week] {len(expected)} slots, {len(rows)} executions, {duplicates} duplicates, "
              f"{len(missing)} missing, {sum(conflicts)} conflicts; lateness max {max(late):.0f}s "
              f"mean {sum(late) / len(late):.1f}s; 2 x {int(week / step)} ticks in {took:.1f}s")
    assert duplicates == 0 and not missing and len(rows) == len(expected)
    assert max(late) <= 52 and min(late) >= 0  # tick step 45 s + phase 7 s
    assert sum(1 for s in svc.store.slot_records("default", sid) if s["outcome"] != "started") == 0


@pytest.mark.parametrize(("day", "cron", "runs"), [
    ((2025, 3, 30), "0 * * * *", 23), ((2025, 10, 26), "0 * * * *", 25),
    ((2025, 3, 30), "30 2 * * *", 1), ((2025, 10, 26), "30 2 * * *", 1),
])
def test_dst_days_in_berlin(svc: Service, day: tuple[int, int, int], cron: str, runs: int) -> None:
    local_midnight = datetime(*day, tzinfo=BERLIN).astimezone(UTC)
    make(svc, cron, timezone="Europe/Berlin", catchup="none", start=format_slot(local_midnight))
    clock = FakeClock(local_midnight - timedelta(minutes=1))
    rec = run_ticks(svc, clock, local_midnight + timedelta(hours=26), timedelta(minutes=1))
    on_day = [s for s, _, _ in rec.made
              if datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).astimezone(BERLIN).date()
              == datetime(*day).date()]
    assert len(on_day) == runs, on_day
    assert len(set(on_day)) == runs


@pytest.mark.parametrize(("catchup", "max_catchup", "run", "skipped"), [
    ("none", 1, [], 11), ("latest", 1, ["10:55"], 10), ("all", 3, ["10:45", "10:50", "10:55"], 8),
])
def test_55_minutes_of_downtime_under_each_catchup_policy(svc: Service, catchup: str, max_catchup: int,
                                                          run: list[str], skipped: int) -> None:
    sid = make(svc, "*/5 * * * *", catchup=catchup, max_catchup=max_catchup)
    clock = FakeClock(at(2025, 6, 1, 9, 59, 30))
    rec = run_ticks(svc, clock, at(2025, 6, 1, 10, 0, 10), timedelta(seconds=20))  # 10:00 runs on time
    assert [s for s, _, _ in rec.made] == ["2025-06-01T10:00:00Z"]
    clock.set(at(2025, 6, 1, 10, 57))  # down for 55 minutes + 2: 10:05 ... 10:55 were missed
    report = scheduling.tick(svc.store, clock, rec)
    assert [slot[11:16] for _, slot, _ in report.started] == run
    assert len(report.skipped) == skipped
    records = {r["slot"][11:16]: r for r in svc.store.slot_records("default", sid)}
    assert all(records[f"10:{m:02d}"]["outcome"] in ("skipped", "started") for m in range(5, 60, 5))
    assert all("catchup=" + catchup in r["reason"] for r in records.values() if r["outcome"] == "skipped")
    clock.set(at(2025, 6, 1, 11, 0, 5))  # back to normal
    assert [slot for _, slot, _ in scheduling.tick(svc.store, clock, rec).started] == ["2025-06-01T11:00:00Z"]


def test_clock_stepping_back_never_repeats_a_slot(svc: Service) -> None:
    sid = make(svc, "0 * * * *", start="2025-06-01T11:59:00Z")
    clock = FakeClock(at(2025, 6, 1, 11, 59))
    rec = run_ticks(svc, clock, at(2025, 6, 1, 12, 1), timedelta(seconds=30))
    assert [s for s, _, _ in rec.made] == ["2025-06-01T12:00:00Z"]
    clock.set(at(2025, 6, 1, 10, 59))  # NTP stepped the clock back by an hour
    rec2 = run_ticks(svc, clock, at(2025, 6, 1, 13, 1), timedelta(seconds=30))
    assert [s for s, _, _ in rec2.made] == ["2025-06-01T13:00:00Z"]
    assert [s for s, _, _ in svc.store.schedule_slot_executions("default", sid)] == [
        "2025-06-01T12:00:00Z", "2025-06-01T13:00:00Z"]


def test_end_in_the_past_runs_nothing_and_records_the_misses(svc: Service) -> None:
    sid = make(svc, "0 * * * *", start="2025-06-01T00:00:00Z", end="2025-06-01T03:30:00Z")
    clock = FakeClock(at(2025, 6, 1, 12, 0, 5))
    report = scheduling.tick(svc.store, clock, Recorder(svc.store, clock))
    assert report.started == [] and [s[1][11:13] for s in report.skipped] == ["00", "01", "02", "03"]
    assert svc.store.schedule_slot_executions("default", sid) == []
    assert scheduling.tick(svc.store, clock, Recorder(svc.store, clock)).skipped == []  # recorded once
    # long ago: the misses are one range, not 100k rows; then the schedule is done for good
    old = make(svc, "* * * * *", start="2025-01-01T00:00:00Z", end="2025-03-01T00:00:00Z")
    report = scheduling.tick(svc.store, clock, Recorder(svc.store, clock))
    assert [s[1] for s in report.skipped] == ["2025-01-01T00:00:00Z..2025-03-01T00:00:00Z"]
    assert scheduling.tick(svc.store, clock, Recorder(svc.store, clock)).skipped == []
    assert svc.store.schedule_row("default", old)["last_slot"] == "2025-03-01T00:00:00Z"


def test_a_long_outage_of_a_per_minute_schedule_is_cheap(svc: Service) -> None:
    sid = make(svc, "* * * * *", start="2024-06-01T00:00:00Z")  # a year of minutes missed
    clock = FakeClock(at(2025, 6, 1, 12, 0, 30))
    t = time.perf_counter()
    report = scheduling.tick(svc.store, clock, Recorder(svc.store, clock))
    assert time.perf_counter() - t < 2.0
    assert [s[1] for s in report.started] == ["2025-06-01T12:00:00Z"]
    assert report.skipped[0][1] == "2024-06-01T00:00:00Z..2025-05-31T12:00:30Z"
    assert len(svc.store.slot_records("default", sid)) == len(report.skipped) + 1
    rare = make(svc, "0 0 1 1 *", start="2025-01-02T00:00:00Z")  # yearly: nothing was missed since start
    clock.advance(60)
    report = scheduling.tick(svc.store, clock, Recorder(svc.store, clock))
    assert not [x for x in report.skipped if x[0] == rare] and svc.store.slot_records("default", rare) == []


def test_deactivate_and_delete_stop_new_runs_and_leave_running_ones(svc: Service) -> None:
    sid = make(svc, "*/10 * * * *", catchup="latest")
    clock = FakeClock(at(2025, 6, 1, 9, 59, 50))
    rec = run_ticks(svc, clock, at(2025, 6, 1, 10, 0, 10), timedelta(seconds=20))
    (slot, _, ex), = rec.made
    svc.store.set_status("default", ex.id, Status.PENDING)
    svc.store.update_schedule("default", sid, status="INACTIVE")
    assert run_ticks(svc, clock, at(2025, 6, 1, 10, 40), timedelta(seconds=20)).made == []
    running = svc.store.get_execution("default", ex.id)
    assert running.status == Status.PENDING and running.target_status == "COMPLETED"  # left alone
    svc.store.update_schedule("default", sid, status="ACTIVE")  # latest: the newest missed slot, once
    clock.set(at(2025, 6, 1, 10, 45))
    assert [s[1] for s in scheduling.tick(svc.store, clock, rec).started] == ["2025-06-01T10:40:00Z"]
    svc.store.delete_schedule("default", sid)
    assert run_ticks(svc, clock, at(2025, 6, 1, 12, 0), timedelta(minutes=1)).made == []
    assert svc.store.get_execution("default", ex.id).target_status == "COMPLETED"


@pytest.mark.parametrize("policy", ["Allow", "Forbid", "Replace"])
def test_concurrency_policies(svc: Service, policy: str) -> None:
    sid = make(svc, "*/10 * * * *", concurrency=policy)
    clock = FakeClock(at(2025, 6, 1, 9, 59, 50))
    rec = run_ticks(svc, clock, at(2025, 6, 1, 10, 0, 10), timedelta(seconds=20))
    first = rec.made[0][2]
    svc.store.set_status("default", first.id, Status.PENDING)  # still going when the next slot comes
    clock.set(at(2025, 6, 1, 10, 10, 5))
    report = scheduling.tick(svc.store, clock, rec)
    assert len(report.started) == (0 if policy == "Forbid" else 1)
    if policy == "Forbid":
        assert "concurrency=Forbid" in report.skipped[0][2] and first.id in report.skipped[0][2]
    assert svc.store.get_execution("default", first.id).target_status == ("STOPPED" if policy == "Replace"
                                                                           else "COMPLETED")


def test_a_failing_submit_is_recorded_never_silent(svc: Service) -> None:
    sid = make(svc, "0 * * * *", slot_parameter="no_such_parameter")
    clock = FakeClock(at(2025, 6, 1, 12, 0, 5))
    report = svc.scheduler_tick(clock)  # the real Service.submit: the binding check refuses it
    assert report.started == [] and report.failed and "no_such_parameter" in report.failed[0][2]
    (rec,) = [r for r in svc.store.slot_records("default", sid) if r["slot"] == "2025-06-01T12:00:00Z"]
    assert rec["outcome"] == "failed" and "no_such_parameter" in rec["reason"]


def test_cli_schedule_scheduler_once_runs_with_the_slot_parameter(cli: Cli, tmp_path: Path) -> None:
    cli.write("t.yaml", template("train", STEP, params=PARAMS))
    cli("register", "t.yaml", check=0)
    svc = Service(cli.home, reap=False)
    cfg = svc.store.create_configuration("default", "c", "test-scenario", "train", [], [])
    svc.close()
    assert "invalid cron" in cli("schedules", "create", "--name", "x", "--cron", "61 * * * *", "--configuration",
                                 cfg.id, check=2).stderr
    assert "unknown time zone" in cli("schedules", "create", "--name", "x", "--cron", "* * * * *", "--timezone",
                                      "Mars/Base", "--configuration", cfg.id, check=2).stderr
    row = cli.json("schedules", "create", "--name", "every-minute", "--cron", "* * * * *", "--configuration", cfg.id,
                   "--start", "2025-01-01T00:00:00Z", "--slot-parameter", "slot")
    p = cli("scheduler", "--once", check=0)
    assert p.stdout.startswith("1 started"), p.stdout
    deadline = time.monotonic() + 30
    while True:
        (ex,) = cli.json("executions", "list", "--schedule", row["id"])
        if ex["status"] in ("COMPLETED", "DEAD") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    shown = cli.json("executions", "show", ex["id"])
    assert ex["status"] == "COMPLETED" and ex["slot"].endswith(":00Z"), shown["statusMessage"]
    svc = Service(cli.home, reap=False)
    workdir = Path(svc.store.get_execution("default", ex["id"]).workdir)
    assert ex["slot"] in "".join(p.read_text() for p in workdir.rglob("slot.txt"))
    svc.close()
    cli("schedules", "deactivate", row["id"], check=0)
    assert cli("scheduler", "--once", check=0).stdout.startswith("0 started")
    show = cli.json("schedules", "show", row["id"])
    assert show["status"] == "INACTIVE" and len(show["executions"]) == 1
    cli("schedules", "delete", row["id"], check=0)
    assert json.loads(cli("schedules", "list", "--json", check=0).stdout) == []


def test_backfill_over_started_slots_keeps_their_execution_and_reason(svc: Service) -> None:
    """Issue 5 review item 11: a backfill over slots that already ran must not erase the
    ``execution_id`` (nor the reason) recorded for them."""
    sid = make(svc, "0 * * * *", start="2025-06-01T00:00:00Z")
    clock = FakeClock(at(2025, 6, 1, 12, 0, 5))
    rec = Recorder(svc.store, clock)
    (started,) = scheduling.tick(svc.store, clock, rec).started
    slot, ex_id = started[1], started[2]
    before = {r["slot"]: r for r in svc.store.slot_records("default", sid)}[slot]
    assert before["outcome"] == "started" and before["execution_id"] == ex_id
    report = scheduling.backfill(svc.store, "default", sid, at(2025, 6, 1, 11), at(2025, 6, 1, 12), rec)
    assert [s[1] for s in report.started] == ["2025-06-01T11:00:00Z"] and report.conflicts == 1
    after = {r["slot"]: r for r in svc.store.slot_records("default", sid)}
    assert after[slot]["execution_id"] == ex_id and after[slot]["reason"] == before["reason"]
    assert after["2025-06-01T11:00:00Z"]["execution_id"] == report.started[0][2]


def test_a_claimed_slot_whose_scheduler_died_before_submitting_is_run_later(svc: Service) -> None:
    """Issue 5 review item 5: the claim commits before the submit; a scheduler that dies in
    between must not lose the slot. A later tick re-submits a claim older than the grace that
    has no execution (once: the UNIQUE (schedule, slot) index backs it up)."""
    sid = make(svc, "0 * * * *", start="2025-06-01T00:00:00Z")
    clock = FakeClock(at(2025, 6, 1, 12, 0, 5))

    def dies(*args: Any, **kw: Any) -> Execution:
        raise SystemExit("scheduler killed between the claim and the submit")

    with pytest.raises(SystemExit):
        scheduling.tick(svc.store, clock, dies)
    (claim,) = [r for r in svc.store.slot_records("default", sid) if r["outcome"] != "skipped"]
    assert claim["outcome"] == "claimed" and claim["execution_id"] is None
    rec = Recorder(svc.store, clock)
    clock.advance(30)
    assert scheduling.tick(svc.store, clock, rec).started == []  # within the grace: maybe still starting
    svc.store.db.execute("UPDATE schedule_slots SET decided_at='2000-01-01T00:00:00.000000Z'")  # the grace passed
    svc.store.db.commit()
    clock.advance(90)
    report = scheduling.tick(svc.store, clock, rec)
    assert [(s[0], s[1]) for s in report.started] == [(sid, "2025-06-01T12:00:00Z")]
    (rec_row,) = [r for r in svc.store.slot_records("default", sid) if r["outcome"] != "skipped"]
    assert rec_row["outcome"] == "started" and rec_row["execution_id"] == report.started[0][2]
    assert scheduling.tick(svc.store, clock, rec).started == [] and len(rec.made) == 1  # never twice


def test_a_claim_whose_execution_exists_is_recorded_started_not_resubmitted(svc: Service) -> None:
    """The other half of a crash: the execution was created, the slot record still says ``claimed``."""
    sid = make(svc, "0 * * * *", start="2025-06-01T00:00:00Z")
    clock = FakeClock(at(2025, 6, 1, 12, 0, 5))
    rec = Recorder(svc.store, clock)

    def dies_after_submit(*args: Any, **kw: Any) -> Execution:
        rec(*args, **kw)
        raise SystemExit("killed after the submit")

    with pytest.raises(SystemExit):
        scheduling.tick(svc.store, clock, dies_after_submit)
    svc.store.db.execute("UPDATE schedule_slots SET decided_at='2000-01-01T00:00:00.000000Z'")
    svc.store.db.commit()
    clock.advance(120)
    assert scheduling.tick(svc.store, clock, rec).started == [] and len(rec.made) == 1
    (row,) = [r for r in svc.store.slot_records("default", sid) if r["outcome"] != "skipped"]
    assert row["outcome"] == "started" and row["execution_id"] == rec.made[0][2].id
