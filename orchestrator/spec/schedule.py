"""Semantic checks and building of the ``ExecutionSchedule`` kind (``apiVersion: orchestrator/v1``).

Owns: what the JSON Schema cannot say about a schedule document (the cron expression and the
IANA zone parse, ``start``/``end`` are ISO 8601 instants with a zone and ``end`` is after
``start``), each as a located :class:`SpecError`, and the raw-dict -> :class:`ScheduleSpec` step.
Cron and zone rules are :mod:`orchestrator.plan.cron`'s (one definition, imported lazily: croniter
is not loaded at package import). Must not import store, service or anything above the spec.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from orchestrator.errors import SpecError
from orchestrator.model import ScheduleSpec
from orchestrator.spec.yamlsafe import Document


def parse_instant(value: str) -> datetime | None:
    """An ISO 8601 instant with a zone (``...Z`` or ``+02:00``) as aware UTC; None if it is not one."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    return parsed.astimezone(timezone.utc).replace(microsecond=0)


def check_schedule(doc: Document) -> list[SpecError]:
    """Every semantic error of one schema-valid ExecutionSchedule document."""
    from orchestrator.spec.cron import ScheduleError, validate_schedule

    spec = doc.data["spec"]
    errs: list[SpecError] = []
    try:
        validate_schedule(str(spec["cron"]), "UTC")
    except ScheduleError as exc:
        errs.append(doc.error("/spec/cron", "schedule.cron", exc.message,
                              exc.hint or "5 fields (minute hour day-of-month month day-of-week), "
                              "6 with seconds first, or @hourly / @daily"))
    try:
        validate_schedule("@daily", str(spec.get("timezone", "UTC")))
    except ScheduleError as exc:
        errs.append(doc.error("/spec/timezone", "schedule.timezone", exc.message, exc.hint or ""))
    instants: dict[str, datetime] = {}
    for key in ("start", "end"):
        if key in spec:
            parsed = parse_instant(str(spec[key]))
            if parsed is None:
                errs.append(doc.error(f"/spec/{key}", "schedule.time",
                                      f"{key} {spec[key]!r} is not an ISO 8601 instant with a time zone",
                                      'e.g. "2025-01-31T02:00:00Z" or "2025-01-31T03:00:00+01:00"'))
            else:
                instants[key] = parsed
    if "start" in instants and "end" in instants and instants["end"] <= instants["start"]:
        errs.append(doc.error("/spec/end", "schedule.end-before-start", "end is not after start"))
    return errs


def build_schedule(doc: Document) -> ScheduleSpec:
    """A validated ExecutionSchedule document -> :class:`ScheduleSpec` (times normalised to UTC)."""
    d = doc.data
    s = d["spec"]

    def instant(key: str) -> str | None:
        parsed = parse_instant(str(s[key])) if key in s else None
        return parsed.strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else None

    line, col = doc.where("/metadata/name")
    return ScheduleSpec(
        name=str(d["metadata"]["name"]), cron=" ".join(str(s["cron"]).split()),
        configuration_name=str(s.get("configurationName", "")), configuration_id=str(s.get("configurationId", "")),
        timezone=str(s.get("timezone", "UTC")), start=instant("start"), end=instant("end"),
        status=str(s.get("status", "ACTIVE")), catchup=str(s.get("catchup", "latest")),
        max_catchup=int(s.get("maxCatchup", 1)), concurrency=str(s.get("concurrency", "Allow")),
        slot_parameter=str(s.get("slotParameter", "")), source=doc.file, line=line, col=col,
        digest=hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest())
