"""What a valid cron expression and time zone are: parsing and checking, nothing about slots.

Owns: :class:`ScheduleError`, :func:`validate_schedule` and the compiled form the cron core
(:mod:`orchestrator.plan.cron`, which documents the decisions) enumerates slots from. It sits in
the spec layer because the ``ExecutionSchedule`` kind is validated here; stdlib, ``croniter`` and
``zoneinfo`` only, plus :mod:`orchestrator.errors`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from orchestrator.errors import UsageError

MAX_CRON_LENGTH = 256
_ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_RANDOM_OR_HASHED = re.compile(r"(?<![a-z])[hr](?![a-z])")  # 'H', 'R(0-9)', not 'thu' or 'mar'


class ScheduleError(UsageError):
    """An invalid cron expression, time zone or schedule field; ``field`` names the culprit."""

    def __init__(self, message: str, *, field: str = "cron", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


@dataclass(frozen=True, eq=False)  # hashed by identity: it keys the _next_wall memo
class Compiled:
    """A parsed expression: a reusable croniter (guarded, it is stateful) and its hour coverage."""

    iterator: croniter
    lock: threading.Lock
    every_hour: bool


def validate_schedule(cron: str, timezone: str) -> None:
    """Check a cron expression and an IANA zone name.

    Args:
        cron: 5 fields, 6 fields with seconds first, or an alias such as ``@daily``.
        timezone: an IANA zone name such as ``Europe/Berlin`` (``UTC`` is fine).

    Raises:
        ScheduleError: with ``field`` set to ``"cron"`` or ``"timezone"`` and a message that says why.
    """
    compile_cron(cron)
    zone(timezone)


@lru_cache(maxsize=512)
def compile_cron(cron: str) -> Compiled:
    if not isinstance(cron, str) or not cron.strip():
        raise ScheduleError("cron is empty", field="cron")
    if len(cron) > MAX_CRON_LENGTH:
        raise ScheduleError(f"cron is longer than {MAX_CRON_LENGTH} characters", field="cron")
    text = " ".join(cron.split())
    fields = [text] if text.lower() in _ALIASES else text.split(" ")
    if len(fields) not in (1, 5, 6) or (len(fields) == 1 and text.lower() not in _ALIASES):
        raise ScheduleError(
            f"cron {text!r} has {len(fields)} field(s); expected 5 (minute hour day-of-month month "
            "day-of-week) or 6 with seconds first", field="cron",
            hint="e.g. '0 * * * *' hourly, '30 0 * * * *' at second 30 of minute 0")
    seconds_first = len(fields) == 6
    if _RANDOM_OR_HASHED.search(text.lower()):
        raise ScheduleError(f"cron {text!r}: random (R) and hashed (H) values are not supported; "
                            "slots must be the same for every scheduler", field="cron")
    try:
        croniter.expand(text, second_at_beginning=seconds_first, strict=True)
        iterator = croniter(text, datetime(2000, 1, 1), second_at_beginning=seconds_first)
    except (ValueError, TypeError, KeyError) as exc:  # CroniterError subclasses ValueError
        raise ScheduleError(f"invalid cron {text!r}: {exc}", field="cron") from None
    hours = iterator.expanded[1]
    every_hour = hours == ["*"] or set(range(24)) <= set(hours)
    return Compiled(iterator, threading.Lock(), every_hour)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ScheduleError("timezone is empty", field="timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise ScheduleError(f"unknown time zone {name!r}", field="timezone",
                            hint="use an IANA name such as 'UTC' or 'Europe/Berlin'") from None
