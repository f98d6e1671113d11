"""Runner side of step metrics: read new lines of a step's tracking file into the store.

Owns: parsing untrusted JSON lines written by a step (line and batch caps, name pattern, finite
values, int64 steps; a bad line is counted and skipped, never fatal) and handing each read
window to the store in one transaction keyed by (source, byte offset), so re-reading any range
(a retry, a runner restart) stores nothing twice. Called periodically (:func:`ingest`) and at step
end (:func:`read`: the runner commits the last window with the step's final state).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from orchestrator.model import MetricPoint
from orchestrator.run import stepfiles
from orchestrator.store import Store

NAME = re.compile(r"[\w.-]{1,256}\Z")
MAX_BATCH_BYTES = 8 * 1024 * 1024
MAX_LINE = 6 * 1024 * 1024
MAX_VALUE_LEN = 5 * 1024 * 1024
INT64 = 2**63 - 1


@dataclass
class Tail:
    path: str
    offset: int = 0
    rejected: int = 0
    skipping: bool = False  # inside an over-long line: drop bytes up to its newline


def _parse(line: bytes, execution_id: str) -> tuple[str, Any]:
    if len(line) > MAX_LINE:
        raise ValueError("line too long")
    rec = json.loads(line)
    kind, name = rec["t"], str(rec["name"])
    if not NAME.match(name):
        raise ValueError(name)
    if kind == "metric":
        value = float(rec["value"])
        step = rec.get("step")
        if not math.isfinite(value):
            raise ValueError("value")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= INT64):
            raise ValueError("step")
        labels = tuple((str(x["name"])[:256], str(x["value"])[:256]) for x in rec.get("labels") or [])[:20]
        return "metric", MetricPoint(execution_id, name, value, str(rec["timestamp"])[:40], step, labels)
    if kind in ("tag", "info"):
        return kind, (name, str(rec["value"])[:MAX_VALUE_LEN])
    raise ValueError(kind)


def read(tail: Tail, execution_id: str) -> tuple[int, list[tuple[int, str, Any]]] | None:
    """Parse the complete lines appended since ``tail.offset``: (the offset after them, their
    records as ``add_tracked`` takes them), or None when no complete line is there yet. Does not
    move ``tail.offset`` past the lines (the caller does, once they are stored or queued)."""
    try:  # as many bytes as are there (a read of MAX_BATCH_BYTES would allocate and free 8 MiB)
        fd = stepfiles.open_fd(tail.path)
    except (FileNotFoundError, stepfiles.NotRegular):  # not there yet; replaced by the step: ignored
        return None
    try:
        data = os.pread(fd, max(0, min(os.fstat(fd).st_size - tail.offset, MAX_BATCH_BYTES)), tail.offset)
    finally:
        os.close(fd)
    start = tail.offset
    if tail.skipping:
        nl = data.find(b"\n")
        if nl < 0:
            tail.offset += len(data)
            return None
        tail.skipping = False
        tail.offset += nl + 1
        start, data = tail.offset, data[nl + 1:]
    end = data.rfind(b"\n")
    if end < 0:
        if len(data) >= MAX_BATCH_BYTES:  # one line longer than a whole window: drop it
            tail.rejected += 1
            tail.skipping = True
            tail.offset += len(data)
        return None
    items: list[tuple[int, str, Any]] = []
    pos = start
    for line in data[: end + 1].split(b"\n")[:-1]:
        try:
            kind, payload = _parse(line, execution_id)
            items.append((pos, kind, payload))
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError):
            tail.rejected += 1
        pos += len(line) + 1
    return start + end + 1, items


def ingest(store: Store, rg: str, execution_id: str, source: str, tail: Tail) -> int:
    """Ingest complete lines appended since the last call; returns the number of new records."""
    got = read(tail, execution_id)
    if got is None:
        return 0
    end, items = got
    count = store.add_tracked(rg, execution_id, source, end, items) if items else 0
    tail.offset = end
    return count
