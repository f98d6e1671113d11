"""The AI API v2 wire format: store rows to camelCase bodies, the error body, paging and JSON.

Owns: every field name on the wire (reference/ai-api-v2.md §4.3), the ``{"error": {...}}`` body,
``top``/``$top``/``skip``/``$skip`` and comma-joined list parameters, and the hostile-input rules
for JSON request bodies (no NaN/Infinity, no duplicate keys, bounded depth and number size). No FastAPI import:
the routers and the app use these plain functions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.errors import UsageError

MAX_TOP = 10000
JSON_DEPTH = 64
MAX_METRICS = 1000  # per metrics PATCH (reference §4.5: 413 above it)


class BadRequest(UsageError):
    """A request that cannot be understood (HTTP 400 in the error shape)."""


class TooLarge(UsageError):
    """A request over a documented size limit, e.g. more than 1000 metrics in one PATCH (HTTP 413)."""

    http_status = 413
    code = "PAYLOAD_TOO_LARGE"


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)  # built once


def dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode()


def error_body(code: str, message: str, *, request_id: str = "", target: str = "",
               details: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if request_id:
        err["requestId"] = request_id
    if target:
        err["target"] = target
    if details:
        err["details"] = list(details)
    return {"error": err}


# ---------------------------------------------------------------------- request parsing
def _no_constant(name: str) -> Any:
    raise BadRequest(f"JSON constant {name} is not allowed")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"number {text[:20]}... is out of range")
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a key twice in one object is an error (as in YAML), never "last wins"
    (the gate and a handler, or two JSON parsers, must never see different values)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BadRequest(f"duplicate key {key[:100]!r} in a JSON object")
            seen.add(key)
    return obj


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, iteratively (a hostile body cannot blow the stack)."""
    stack = [(obj, 1)]
    deepest = 0
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
    return deepest


def parse_json(body: bytes) -> Any:
    """Parse an untrusted JSON body or raise :class:`BadRequest` (never RecursionError/500)."""
    try:
        text = body.decode("utf-8")
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_float, object_pairs_hook=_unique)
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest(f"JSON nested deeper than {JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        if "int_max_str_digits" in str(exc):  # Python's own hint is no help to a client
            raise BadRequest("request body has an integer with more than 4300 digits") from None
        raise BadRequest(f"request body is not valid JSON: {str(exc)[:120]}") from None
    if _depth(obj, JSON_DEPTH) > JSON_DEPTH:
        raise BadRequest(f"JSON nested deeper than {JSON_DEPTH} levels")
    return obj


def paging(params: Mapping[str, str]) -> tuple[int, int]:
    """``(top, skip)`` from ``$top``/``top`` and ``$skip``/``skip`` (the SDK sends them without ``$``)."""
    out = []
    for name, default in (("top", MAX_TOP), ("skip", 0)):
        raw = params.get("$" + name, params.get(name))
        if raw is None or raw == "":
            out.append(default)
            continue
        if not raw.isdigit() or len(raw) > 9:
            raise BadRequest(f"{name} must be a non-negative integer, got {raw[:20]!r}")
        out.append(int(raw))
    return min(out[0], MAX_TOP), out[1]


def csv(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


def listing(items: list[dict[str, Any]], count: int) -> dict[str, Any]:
    return {"count": count, "resources": items}


# ---------------------------------------------------------------------- rows -> wire
def _labels(text: str | None) -> list[dict[str, str]]:
    return [{"key": str(k), "value": str(v)} for k, v in json.loads(text or "[]")]


def _bindings(text: str | None, value_key: str) -> list[dict[str, str]]:
    return [{"key": str(k), value_key: str(v)} for k, v in json.loads(text or "[]")]


def scenario(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "name": r["name"], "description": r["description"] or "",
            "labels": _labels(r["labels"]), "createdAt": r["created_at"], "modifiedAt": r["modified_at"]}


def version(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "scenarioId": r["scenario_id"], "description": r["description"] or "",
            "createdAt": r["created_at"], "modifiedAt": r["modified_at"]}


def executable(e: Any, kinds: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An :class:`~orchestrator.model.Executable`; artifact items carry only name/kind/description/labels."""
    return {
        "id": e.id, "scenarioId": e.scenario_id, "versionId": e.version_id, "name": e.name,
        "description": e.description, "deployable": e.deployable, "labels": [],
        "parameters": [{"name": p.name, "type": "string", **({"default": p.default} if p.default is not None else {}),
                        **({"description": p.description} if p.description else {})} for p in e.parameters],
        "inputArtifacts": [{"name": n, **({"kind": k} if k else {})} for n, k in e.input_artifacts],
        "outputArtifacts": [{"name": n, **({"kind": k} if k else {})} for n, k in e.output_artifacts],
        "createdAt": e.created_at, "modifiedAt": e.modified_at,
    }


def configuration(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "name": r["name"], "scenarioId": r["scenario_id"], "executableId": r["executable_id"],
            "parameterBindings": _bindings(r["parameter_bindings"], "value"),
            "inputArtifactBindings": _bindings(r["input_artifact_bindings"], "artifactId"),
            "createdAt": r["created_at"]}


def artifact(r: Mapping[str, Any]) -> dict[str, Any]:
    out = {"id": r["id"], "name": r["name"], "kind": r["kind"], "url": r["url"], "scenarioId": r["scenario_id"],
           "description": r["description"] or "", "labels": _labels(r["labels"]),
           "createdAt": r["created_at"], "modifiedAt": r["modified_at"]}
    if r["execution_id"]:
        out["executionId"] = r["execution_id"]
    if r["configuration_id"]:
        out["configurationId"] = r["configuration_id"]
    return out


def execution(r: Mapping[str, Any], outputs: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r["id"], "configurationId": r["configuration_id"], "configurationName": r["configuration_name"] or "",
        "scenarioId": r["scenario_id"], "executableId": r["executable_id"], "status": r["status"],
        "targetStatus": r["target_status"], "statusMessage": r["status_message"] or "",
        "createdAt": r["created_at"], "modifiedAt": r["modified_at"], "submissionTime": r["submission_time"],
        "outputArtifacts": [artifact(a) for a in outputs],
    }
    for key, col in (("startTime", "start_time"), ("completionTime", "completion_time"),
                     ("executionScheduleId", "execution_schedule_id"), ("scheduleSlot", "schedule_slot"),
                     ("commitSha", "commit_sha")):
        if r[col]:
            out[key] = r[col]
    if r["status_details"]:
        out["statusDetails"] = json.loads(r["status_details"])
    return out


def execution_status(r: Mapping[str, Any]) -> dict[str, Any]:
    """``$select=status``: exactly these keys (the SDK raises TypeError on any other)."""
    out = {"id": r["id"], "configurationId": r["configuration_id"], "status": r["status"],
           "createdAt": r["created_at"], "modifiedAt": r["modified_at"]}
    if r["status_details"]:
        out["statusDetails"] = json.loads(r["status_details"])
    return out


def schedule(r: Mapping[str, Any]) -> dict[str, Any]:
    out = {"id": r["id"], "name": r["name"], "cron": r["cron"], "configurationId": r["configuration_id"],
           "status": r["status"], "createdAt": r["created_at"], "modifiedAt": r["modified_at"]}
    for key in ("start", "end"):
        if r[key]:
            out[key] = r[key]
    return out


def resource_group(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"resourceGroupId": r["id"], "tenantId": "local", "zoneId": "local", "labels": _labels(r["labels"]),
            "status": "PROVISIONED", "statusMessage": "", "createdAt": r["created_at"]}


def metric_resource(execution_id: str, points: Sequence[Any], tags: Sequence[tuple[str, str]],
                    info: Sequence[tuple[str, str]], select: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"executionId": execution_id}
    if "metrics" in select:
        out["metrics"] = [{"name": p.name, "value": p.value, "timestamp": p.timestamp,
                           **({"step": p.step} if p.step is not None else {}),
                           "labels": [{"name": k, "value": v} for k, v in p.labels]} for p in points]
    if "tags" in select:
        out["tags"] = [{"name": k, "value": v} for k, v in tags]
    if "customInfo" in select:
        out["customInfo"] = [{"name": k, "value": v} for k, v in info]
    return out
