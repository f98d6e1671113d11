"""Routes of executions (create, get, list, stop, bulk, delete, logs, $count), execution schedules,
metrics, and the per-execution tracking endpoint that steps the server runs report to.

Owns: the HTTP shape of those resources (AI API v2, reference §4.3-4.5). The tracking endpoint
(``/tracking/<capability>/api/v1/metrics``, what ``ai_core_sdk.tracking.Tracking`` calls inside a
step when ``AICORE_TRACKING_ENDPOINT`` is set) accepts only the metrics of its own execution.
"""

from __future__ import annotations

import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orchestrator.api import models as m
from orchestrator.api import wire
from orchestrator.api.deps import ERRORS, PAGING, page, query, scoped
from orchestrator.api.responses import error_response, json_response
from orchestrator.control import modelrefs, resources, tokens
from orchestrator.control.service import Service
from orchestrator.errors import NotFound
from orchestrator.model import MetricPoint
from orchestrator.run import stepfiles
from orchestrator.store import now_iso

router = APIRouter(responses=ERRORS)
LOG_BYTES = 10 * 1024 * 1024
POLL_CACHE_MAX = 4096
PollCache = dict[tuple[str, str, bool], tuple[tuple[object, int], bytes]]


def _exec_query(request: Request) -> Any:
    svc = scoped(request)
    q = request.query_params
    return svc, svc.store.query_executions(
        svc.rg, scenario_id=q.get("scenarioId"), configuration_id=q.get("configurationId"),
        executable_ids=wire.csv(q.get("executableIds")), schedule_id=q.get("executionScheduleId"),
        status=q.get("status"))


EXECUTION_FILTERS = ("scenarioId", "configurationId", "executableIds", "executionScheduleId", "status")


# ---------------------------------------------------------------------- executions
@router.post("/v2/lm/executions", status_code=202, response_model=None,
             responses={202: {"model": m.ExecutionCreated}})
async def create_execution(request: Request, payload: m.ExecutionIn) -> Response:
    svc = scoped(request)
    ex = resources.submit(svc, payload.configurationId)
    return json_response({"id": ex.id, "message": "Execution scheduled", "status": ex.status.value,
                          "targetStatus": ex.target_status}, 202)


@router.get("/v2/lm/executions", response_model=None, responses={200: {"model": m.ExecutionList}},
            openapi_extra=query(*EXECUTION_FILTERS, *PAGING))
async def list_executions(request: Request) -> Response:
    svc, q = _exec_query(request)
    top, skip = wire.paging(request.query_params)
    rows = svc.store.run_query(q, svc.store.EXECUTION_COLS, limit=top, offset=skip)
    outputs = svc.store.output_artifacts(svc.rg, [r["id"] for r in rows])
    items = [wire.execution(r, outputs.get(r["id"], ())) for r in rows]
    return json_response(wire.listing(items, svc.store.count_query(q)))


@router.get("/v2/lm/executions/$count", response_model=None, responses={200: {"model": int}},
            openapi_extra=query(*EXECUTION_FILTERS))
async def count_executions(request: Request) -> Response:
    svc, q = _exec_query(request)
    return json_response(svc.store.count_query(q))


@router.patch("/v2/lm/executions", status_code=202, response_model=None, responses={202: {"model": m.BulkOut}})
async def bulk_modify(request: Request, payload: m.BulkIn) -> Response:
    svc = scoped(request)
    results = resources.bulk_modify(svc, [(i.id, i.targetStatus) for i in payload.executions])
    return json_response({"executions": results}, 202)


@router.get("/v2/lm/executions/{execution_id}", response_model=None,
            responses={200: {"model": m.ExecutionOut | m.ExecutionStatusOut}}, openapi_extra=query("$select"))
async def get_execution(request: Request, execution_id: str) -> Response:
    svc = scoped(request)
    status_only = bool(request.scope["query_string"]) and request.query_params.get("$select") == "status"
    # What clients poll: the encoded answer is reused while the database has not changed at all
    # (no commit by any connection or process since), so it can never be stale.
    version = svc.store.version()
    key = (svc.rg, execution_id, status_only)
    cache: PollCache | None = getattr(request.app.state, "poll_cache", None)
    if cache is None:
        cache = request.app.state.poll_cache = {}
    hit = cache.get(key)
    if hit is not None and hit[0] == version:
        return Response(hit[1], media_type="application/json")
    if status_only:
        body = wire.dumps(wire.execution_status(svc.store.execution_row(svc.rg, execution_id)))
    else:
        row, outputs = svc.store.execution_with_outputs(svc.rg, execution_id)
        out = wire.execution(row, outputs)
        refs = [i for i in svc.store.execution_inputs(svc.rg, execution_id) or () if i.get("reference")]
        if refs:  # the model versions its models:/ bindings resolved to (extension, issue 14)
            out["modelInputs"] = [modelrefs.wire(i) for i in refs]
        body = wire.dumps(out)
    if len(cache) >= POLL_CACHE_MAX:
        cache.clear()
    cache[key] = (version, body)
    return Response(body, media_type="application/json")


@router.patch("/v2/lm/executions/{execution_id}", status_code=202, response_model=None,
              responses={202: {"model": m.IdMessage}})
async def modify_execution(request: Request, execution_id: str, payload: m.ExecutionPatch) -> Response:
    svc = scoped(request)
    resources.stop(svc, execution_id)
    return json_response({"id": execution_id, "message": "Execution modification scheduled"}, 202)


@router.delete("/v2/lm/executions/{execution_id}", status_code=202, response_model=None,
               responses={202: {"model": m.IdMessage}})
async def delete_execution(request: Request, execution_id: str) -> Response:
    svc = scoped(request)
    resources.delete_execution(svc, execution_id)
    return json_response({"id": execution_id, "message": "Deletion scheduled"}, 202)


def _iso(epoch: float | None) -> str:
    moment = datetime.datetime.fromtimestamp(epoch or 0, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@router.get("/v2/lm/executions/{execution_id}/logs", response_model=None, responses={200: {"model": m.LogsOut}},
            openapi_extra=query("top", "$top", "start", "end", "order", "$start", "$end", "$order"))
def execution_logs(request: Request, execution_id: str) -> Response:  # sync: file reads run in the threadpool
    svc = scoped(request)
    svc.store.execution_row(svc.rg, execution_id)
    q = request.query_params
    top, _ = wire.paging(q)
    start = resources.parse_time(q.get("start") or q.get("$start"), "start")
    end = resources.parse_time(q.get("end") or q.get("$end"), "end")
    order = (q.get("order") or q.get("$order") or "asc").lower()
    if order not in ("asc", "desc"):
        raise wire.BadRequest("order must be asc or desc")
    lines: list[dict[str, str]] = []
    budget = LOG_BYTES
    attempts = sorted(svc.store.list_attempts(svc.rg, execution_id), key=lambda a: (a.started_at or 0, a.node_id))
    for a in attempts:
        stamp = _iso(a.started_at)
        if (start and stamp[:19] + "Z" < start) or (end and stamp[:19] + "Z" > end) or not a.log_path:
            continue
        try:
            data = stepfiles.read_bytes(a.log_path, budget)[0]
        except OSError:
            continue
        except stepfiles.NotRegular:  # a link or a FIFO the step put there: never followed
            data = stepfiles.REPLACED.encode()
        budget -= len(data)
        lines += [{"msg": f"{a.node_id} | {line}", "timestamp": stamp}
                  for line in data.decode("utf-8", "replace").splitlines()]
        if budget <= 0:
            break
    if order == "desc":
        lines.reverse()
    return json_response({"data": {"result": lines[:top]}})


# ---------------------------------------------------------------------- schedules
def _sched_query(request: Request) -> Any:
    svc = scoped(request)
    q = request.query_params
    status = q.get("status")
    if status and status not in ("ACTIVE", "INACTIVE"):
        raise wire.BadRequest("status must be ACTIVE or INACTIVE")
    return svc, svc.store.query_schedules(svc.rg, configuration_id=q.get("configurationId"), status=status)


@router.post("/v2/lm/executionSchedules", status_code=202, response_model=None,
             responses={202: {"model": m.IdMessage}})
async def create_schedule(request: Request, payload: m.ScheduleIn) -> Response:
    svc = scoped(request)
    row = resources.create_schedule(svc, name=payload.name, cron=payload.cron, configuration_id=payload.configurationId,
                                  start=payload.start, end=payload.end, status=payload.status)
    return json_response({"id": row["id"], "message": "Execution schedule created"}, 202)


@router.get("/v2/lm/executionSchedules", response_model=None, responses={200: {"model": m.ScheduleList}},
            openapi_extra=query("configurationId", "status", *PAGING))
async def list_schedules(request: Request) -> Response:
    svc, q = _sched_query(request)
    return page(request, svc, q, svc.store.SCHEDULE_COLS, wire.schedule)


@router.get("/v2/lm/executionSchedules/$count", response_model=None, responses={200: {"model": int}},
            openapi_extra=query("configurationId", "status"))
async def count_schedules(request: Request) -> Response:
    svc, q = _sched_query(request)
    return json_response(svc.store.count_query(q))


@router.get("/v2/lm/executionSchedules/{schedule_id}", response_model=None, responses={200: {"model": m.ScheduleOut}})
async def get_schedule(request: Request, schedule_id: str) -> Response:
    svc = scoped(request)
    return json_response(wire.schedule(svc.store.get_schedule(svc.rg, schedule_id)))


@router.patch("/v2/lm/executionSchedules/{schedule_id}", status_code=202, response_model=None,
              responses={202: {"model": m.IdMessage}})
async def modify_schedule(request: Request, schedule_id: str, payload: m.SchedulePatch) -> Response:
    svc = scoped(request)
    resources.modify_schedule(svc, schedule_id, payload.model_dump(exclude_unset=True))
    return json_response({"id": schedule_id, "message": "Execution schedule modified"}, 202)


@router.delete("/v2/lm/executionSchedules/{schedule_id}", status_code=202, response_model=None,
               responses={202: {"model": m.IdMessage}})
async def delete_schedule(request: Request, schedule_id: str) -> Response:
    svc = scoped(request)
    svc.store.delete_schedule(svc.rg, schedule_id)
    return json_response({"id": schedule_id, "message": "Execution schedule deleted"}, 202)


# ---------------------------------------------------------------------- metrics
def _store_metrics(svc: Service, payload: m.MetricsPatch) -> None:
    if len(payload.metrics or []) > wire.MAX_METRICS:
        raise wire.TooLarge(f"at most {wire.MAX_METRICS} metrics per request, got {len(payload.metrics or [])}")
    now = now_iso()
    points = [MetricPoint(payload.executionId, x.name, x.value, resources.parse_time(x.timestamp, "timestamp") or now,
                          x.step, tuple((lab.name, lab.value) for lab in x.labels or []))
              for x in payload.metrics or []]
    svc.store.add_metrics(svc.rg, payload.executionId, "", points,
                          [(t.name, t.value) for t in payload.tags or []],
                          [(c.name, c.value) for c in payload.customInfo or []])


@router.get("/v2/lm/metrics", response_model=None, responses={200: {"model": m.MetricsList}},
            openapi_extra=query("executionIds", "$select", "$filter"))
async def get_metrics(request: Request) -> Response:
    svc = scoped(request)
    q = request.query_params
    ids = wire.csv(q.get("executionIds"))
    if not ids and (q.get("$filter") or "").startswith("executionId eq "):
        ids = [q["$filter"].split(" eq ", 1)[1].strip().strip("'")]
    if not ids or len(ids) > 10:
        raise wire.BadRequest("executionIds must name 1 to 10 executions")
    select = set(wire.csv(q.get("$select"))) or {"*"}
    if "*" in select:
        select = {"metrics", "tags", "customInfo"}
    out = []
    for eid in ids:
        svc.store.execution_row(svc.rg, eid)  # 404 for another group's execution
        tags, info = svc.store.get_tags(svc.rg, eid)
        out.append(wire.metric_resource(eid, svc.store.get_metrics(svc.rg, eid), tags, info, select))
    return json_response(wire.listing(out, len(out)))


@router.patch("/v2/lm/metrics", status_code=204, response_model=None)
async def patch_metrics(request: Request, payload: m.MetricsPatch) -> Response:
    svc = scoped(request)
    svc.store.execution_row(svc.rg, payload.executionId)
    _store_metrics(svc, payload)
    return Response(status_code=204)


@router.delete("/v2/lm/metrics", response_model=None, responses={200: {"model": m.IdMessage}},
               openapi_extra=query("executionId"))
async def delete_metrics(request: Request) -> Response:
    svc = scoped(request)
    eid = request.query_params.get("executionId", "")
    svc.store.delete_metrics(svc.rg, eid)
    return json_response({"id": eid, "message": "Metrics deleted"})


@router.patch("/tracking/{capability}/api/v1/metrics", status_code=204, response_model=None)
async def tracking_metrics(request: Request, capability: str, payload: m.MetricsPatch) -> Response:
    """What ``ai_core_sdk.tracking.Tracking`` calls from inside a step (no bearer header: the
    path itself is the credential, minted for one execution)."""
    svc: Service = request.app.state.svc
    cap = tokens.lookup(svc.store, capability)
    if cap is None or cap["kind"] != "tracking":
        return error_response(401, "UNAUTHORIZED", "invalid tracking endpoint",
                              {"WWW-Authenticate": 'Bearer realm="orchestrator"'})
    if payload.executionId != cap["execution_id"]:
        raise NotFound(f"execution {payload.executionId!r} not found")
    scoped_svc = svc.scoped(cap["rg"])
    row = scoped_svc.store.execution_row(cap["rg"], payload.executionId)
    if row["status"] in ("COMPLETED", "DEAD", "STOPPED"):
        return error_response(400, "INVALID_STATE", f"execution {payload.executionId} has ended")
    _store_metrics(scoped_svc, payload)
    return Response(status_code=204)


__all__ = ["router"]
