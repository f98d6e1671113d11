"""The ExecutionSchedule kind: JSON Schema + semantic checks, each error at its file:line:col."""

from __future__ import annotations

import pytest

from orchestrator.spec import load_trusted, validate_text

DOC = """apiVersion: orchestrator/v1
kind: ExecutionSchedule
metadata:
  name: nightly
spec:
  cron: "{cron}"
  timezone: {zone}
  configurationName: train-cfg
{extra}"""


def check(cron: str = "0 2 * * *", zone: str = "Europe/Berlin", extra: str = "") -> list[str]:
    res = validate_text(DOC.format(cron=cron, zone=zone, extra=extra).encode(), "s.yaml")
    return [e.format().splitlines()[0] for e in res.errors]


def test_a_valid_schedule_builds_with_times_in_utc() -> None:
    text = DOC.format(cron="0  2 * * *", zone="Europe/Berlin",
                      extra='  start: "2025-03-01T00:00:00+01:00"\n  end: 2025-12-31T00:00:00Z\n'
                            "  catchup: all\n  maxCatchup: 3\n  concurrency: Forbid\n  slotParameter: slot\n")
    res = validate_text(text.encode(), "s.yaml")
    assert res.errors == []
    (s,) = res.schedules
    assert (s.cron, s.start, s.end, s.catchup, s.max_catchup, s.concurrency, s.slot_parameter) == (
        "0 2 * * *", "2025-02-28T23:00:00Z", "2025-12-31T00:00:00Z", "all", 3, "Forbid", "slot")
    assert load_trusted(text.encode(), "s.yaml").schedules == [s]


@pytest.mark.parametrize(("cron", "zone", "extra", "expected"), [
    ("61 * * * *", "UTC", "", "s.yaml:6:9: error schedule.cron invalid cron"),
    ("* * *", "UTC", "", "s.yaml:6:9: error schedule.cron cron '* * *' has 3 field(s)"),
    ("R * * * *", "UTC", "", "s.yaml:6:9: error schedule.cron cron 'R * * * *': random (R)"),
    ("0 0 30 2 *", "UTC", "", "s.yaml:6:9: error schedule.cron invalid cron"),
    ("@hourly", "Mars/Olympus", "", "s.yaml:7:13: error schedule.timezone unknown time zone 'Mars/Olympus'"),
    ("@hourly", "UTC", "  start: tomorrow\n", "s.yaml:9:10: error schedule.time start 'tomorrow' is not"),
    ("@hourly", "UTC", "  start: 2025-01-01T00:00:00\n", "s.yaml:9:10: error schedule.time start"),
    ("@hourly", "UTC", "  start: 2025-02-01T00:00:00Z\n  end: 2025-01-01T00:00:00Z\n",
     "s.yaml:10:8: error schedule.end-before-start"),
    ("@hourly", "UTC", "  catchup: sometimes\n", "s.yaml:9:12: error schema.enum"),
    ("@hourly", "UTC", "  maxCatchup: 0\n", "s.yaml:9:15: error schema.minimum"),
    ("@hourly", "UTC", "  configurationId: abc\n", "s.yaml:6:3: error schema.oneOf"),
    ("@hourly", "UTC", "  cronn: x\n", "s.yaml:9:3: error argo.unsupported-field unsupported field 'cronn'"),
])
def test_invalid_schedules_are_located(cron: str, zone: str, extra: str, expected: str) -> None:
    errors = check(cron, zone, extra)
    assert any(e.startswith(expected) for e in errors), errors
