"""What a step imports to log metrics: ``from orchestrator import tracking``.

Owns: the step-side API in SAP's metric shape (reference §4.5): ``log_metric``,
``log_metrics``, ``set_tags``, ``set_custom_info``. Each call appends one JSON line to the file
named by ``ORCHESTRATOR_TRACKING_FILE`` (the runner ingests it in batches, with no server);
outside a run it warns once and does nothing. Must stay import-light (stdlib only): it runs
inside every user step.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

ENV_FILE = "ORCHESTRATOR_TRACKING_FILE"
_fd: int | None = None
_warned = False

Labels = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _emit(record: dict[str, Any]) -> None:
    global _fd, _warned
    path = os.environ.get(ENV_FILE)
    if not path:
        if not _warned:
            print("orchestrator.tracking: not inside an orchestrator run; metrics are not recorded",
                  file=sys.stderr)
            _warned = True
        return
    if _fd is None:
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(_fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())


def _labels(labels: Labels) -> list[dict[str, str]]:
    if not labels:
        return []
    if isinstance(labels, Mapping):
        return [{"name": str(k), "value": str(v)} for k, v in labels.items()]
    return [{"name": str(x["name"]), "value": str(x["value"])} for x in labels]


def _value(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(f"metric {name!r}: value must be a number, got {value!r}")
    if not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {name!r}: value must be a number, got {value!r}") from None
    if not math.isfinite(float(value)):
        raise ValueError(f"metric {name!r}: value must be finite, got {value!r}")
    return float(value)


def log_metric(name: str, value: float, step: int | None = None, labels: Labels = None,
               timestamp: str | None = None) -> None:
    """Record one metric point (``step`` >= 0; labels as a dict or SAP's ``[{name, value}]``)."""
    if step is not None and (not isinstance(step, int) or step < 0):
        raise ValueError(f"metric {name!r}: step must be an integer >= 0")
    _emit({"t": "metric", "name": str(name), "value": _value(name, value), "step": step,
           "labels": _labels(labels), "timestamp": timestamp or _now()})


def log_metrics(metrics: Mapping[str, float], step: int | None = None, labels: Labels = None) -> None:
    """Record several metrics at once (same step, labels and timestamp)."""
    ts = _now()
    for name, value in metrics.items():
        log_metric(name, value, step=step, labels=labels, timestamp=ts)


def _pairs(items: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    if isinstance(items, Mapping):
        return [(str(k), str(v)) for k, v in items.items()]
    return [(str(x["name"]), str(x["value"])) for x in items]


def set_tags(tags: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
    """Set tags on the execution (upsert by name)."""
    for k, v in _pairs(tags):
        _emit({"t": "tag", "name": k, "value": v})


def set_custom_info(info: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
    """Set customInfo entries (upsert by name; values are strings, e.g. a JSON report)."""
    for k, v in _pairs(info):
        _emit({"t": "info", "name": k, "value": v})
