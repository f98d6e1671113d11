"""SAP's ``ai_core_sdk.tracking.Tracking`` inside a step of any run, on the runner's loopback endpoint.

Owns: ``PATCH /aicore/<capability>/api/v1/metrics`` — the path the SDK calls under
``AICORE_TRACKING_ENDPOINT`` — on the execution's endpoint (:mod:`orchestrator.run.mlflow_endpoint`,
which hands every request here first), so ``Tracking().log_metrics(...)`` lands in the store for
runs the CLI starts too, not only for those the server starts (the server gives its steps a
capability URL of its own, which wins). The capability is the endpoint's per-execution credential
(the one ``MLFLOW_TRACKING_TOKEN`` carries), compared in constant time; the body is AI Core's
metrics PATCH (``executionId`` = this execution, ``metrics``, ``tags``, ``customInfo``), checked
field by field (caps, finite numbers, timestamps between 1970 and 9999) and stored in one batch as
the step's own (the endpoint URL names the step by its MLflow run id), so a step answered from the
step cache brings them along like the metrics of its tracking file.
Errors answer in AI Core's shape ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import time
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.model import MetricPoint
from orchestrator.store import now_iso, parse_time

PATH = re.compile(r"^/aicore/([^/]+)/([^/]+)/api/v1/metrics\Z")
MAX_METRICS = 1000  # per request, as the server's PATCH /v2/lm/metrics
MAX_PAIRS = 100  # tags, customInfo, labels of one metric
MAX_TEXT = 5000


class _Bad(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.reply = status, {"error": {"code": code, "message": message}}


def endpoint(url: str, token: str, run_id: str) -> str:
    """``AICORE_TRACKING_ENDPOINT`` of a step (its MLflow run id names the step): the SDK appends
    ``/api/v1/metrics``."""
    return f"{url}/aicore/{token}/{run_id}"


def handle(session: Any, method: str, path: str, body: bytes | None) -> tuple[int, Any] | None:
    """The answer to an AI Core tracking request, or None when ``path`` is not one (MLflow's then)."""
    m = PATH.match(path)
    if m is None:
        return None
    try:
        if not hmac.compare_digest(m.group(1).encode(), session.token.encode()):
            raise _Bad(401, "UNAUTHORIZED", "invalid tracking endpoint (AICORE_TRACKING_ENDPOINT)")
        if method != "PATCH":
            raise _Bad(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed here: the SDK PATCHes metrics")
        try:
            doc = json.loads(body or b"{}", parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise _Bad(400, "INVALID_REQUEST", "the body is not JSON") from None
        points, tags, info = _parse(doc, session.ex.id)
        with session.lock:
            run = session.runs.get(m.group(2))
            if run is None:
                raise _Bad(404, "NOT_FOUND", "this tracking endpoint belongs to no step of the execution")
            # Per step, as its tracking file and its MLflow calls: a cache hit brings these along.
            session._last = end = max(session._last + 1, time.time_ns())
            session.store.add_tracked(session.rg, session.ex.id, f"{run['node']}:aicore", end,
                                      [(end - 1, "metric", p) for p in points] + [(end - 1, "tag", t) for t in tags]
                                      + [(end - 1, "info", i) for i in info])
    except _Bad as exc:
        return exc.reply
    except OrchestratorError as exc:  # e.g. the execution has ended
        return 400, {"error": {"code": "INVALID_REQUEST", "message": exc.message}}
    return 204, b""


def _no_constant(name: str) -> float:
    raise ValueError(f"JSON constant {name} is not allowed")


def _parse(doc: Any, execution_id: str) -> tuple[list[MetricPoint], list[tuple[str, str]], list[tuple[str, str]]]:
    if not isinstance(doc, dict):
        raise _Bad(400, "INVALID_REQUEST", "the body must be a JSON object")
    if doc.get("executionId") != execution_id:
        raise _Bad(404, "NOT_FOUND", f"execution {str(doc.get('executionId'))[:40]!r} not found: this "
                   f"endpoint takes the metrics of execution {execution_id} (AICORE_EXECUTION_ID) only")
    metrics = _list(doc, "metrics", MAX_METRICS)
    now = now_iso()
    points = []
    for x in metrics:
        if not isinstance(x, dict):
            raise _Bad(400, "INVALID_REQUEST", "each metric must be an object")
        value, step = x.get("value"), x.get("step")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _Bad(400, "INVALID_REQUEST", f"metric {_text(x, 'name')!r}: value must be a finite number")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise _Bad(400, "INVALID_REQUEST", f"metric {_text(x, 'name')!r}: step must be an integer")
        stamp = x.get("timestamp")
        try:
            when = parse_time(stamp if isinstance(stamp, str) else None, "timestamp") or now
        except OrchestratorError as exc:
            raise _Bad(400, "INVALID_REQUEST", exc.message) from None
        points.append(MetricPoint(execution_id, _text(x, "name"), float(value), when, step,
                                  tuple(_pairs({"labels": x.get("labels") or []}, "labels"))))
    return points, _pairs(doc, "tags"), _pairs(doc, "customInfo")


def _list(doc: dict[str, Any], key: str, cap: int) -> list[Any]:
    items = doc.get(key) or []
    if not isinstance(items, list):
        raise _Bad(400, "INVALID_REQUEST", f"{key} must be a list")
    if len(items) > cap:
        raise _Bad(413, "PAYLOAD_TOO_LARGE", f"at most {cap} {key} per request, got {len(items)}")
    return items


def _pairs(doc: dict[str, Any], key: str) -> list[tuple[str, str]]:
    out = []
    for item in _list(doc, key, MAX_PAIRS):
        if not isinstance(item, dict):
            raise _Bad(400, "INVALID_REQUEST", f"each of {key} must be an object with name and value")
        out.append((_text(item, "name"), _text(item, "value")))
    return out


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value and key == "name" or len(value) > MAX_TEXT:
        raise _Bad(400, "INVALID_REQUEST", f"{key} must be a string of 1 to {MAX_TEXT} characters")
    return value


__all__ = ["endpoint", "handle"]
