"""Runner side of step metrics: read new lines of a step's tracking file into the store.

Owns: parsing untrusted JSON lines written by a step (caps, name pattern, finite values), and
writing each batch in one transaction with a batch id (``node:attempt:offset``) so a retried
ingestion is harmless. Called by the runner periodically and at step end.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass

from orchestrator.model import MetricPoint
from orchestrator.store import Store

NAME = re.compile(r"^[\w.-]{1,256}$")
MAX_BATCH_BYTES = 8 * 1024 * 1024
MAX_VALUE_LEN = 5 * 1024 * 1024


@dataclass
class Tail:
    path: str
    offset: int = 0
    rejected: int = 0


def ingest(store: Store, rg: str, execution_id: str, batch_prefix: str, tail: Tail) -> int:
    """Ingest complete lines appended since the last call; returns the number of records."""
    try:
        with open(tail.path, "rb") as f:
            f.seek(tail.offset)
            data = f.read(MAX_BATCH_BYTES)
    except FileNotFoundError:
        return 0
    end = data.rfind(b"\n")
    if end < 0:
        return 0
    chunk = data[: end + 1]
    metrics: list[MetricPoint] = []
    tags: list[tuple[str, str]] = []
    info: list[tuple[str, str]] = []
    for line in chunk.splitlines():
        try:
            rec = json.loads(line)
            kind, name = rec["t"], str(rec["name"])
            if not NAME.match(name):
                raise ValueError(name)
            if kind == "metric":
                value = float(rec["value"])
                step = rec.get("step")
                if not math.isfinite(value) or (step is not None and (not isinstance(step, int) or step < 0)):
                    raise ValueError(name)
                labels = tuple((str(x["name"]), str(x["value"])) for x in rec.get("labels") or [])[:20]
                metrics.append(MetricPoint(execution_id, name, value, str(rec["timestamp"])[:40], step, labels))
            elif kind in ("tag", "info"):
                value_s = str(rec["value"])[:MAX_VALUE_LEN]
                (tags if kind == "tag" else info).append((name, value_s))
            else:
                raise ValueError(kind)
        except (ValueError, KeyError, TypeError, AttributeError):
            tail.rejected += 1
    if metrics or tags or info:
        store.add_metrics(rg, execution_id, f"{batch_prefix}:{tail.offset}", metrics, tags, info)
    tail.offset += len(chunk)
    return len(metrics) + len(tags) + len(info)


def remove(tail: Tail) -> None:
    try:
        os.unlink(tail.path)
    except OSError:
        pass
