"""Routes of deployments: create, list, ``$count``, get (``$select=status``), modify (stop or swap
the configuration), bulk modify, delete and logs (AI API v2, reference §4.3 and §4.6).

Owns: the HTTP shape of deployments only. The rules are :mod:`orchestrator.control.deploy`; the
processes are the deployment manager's; inference traffic is :mod:`orchestrator.api.routes_inference`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orchestrator.api import models as m
from orchestrator.api import models_deployments as md
from orchestrator.api import wire
from orchestrator.api.deps import ERRORS, PAGING, query, scoped
from orchestrator.api.responses import json_response
from orchestrator.control import deploy
from orchestrator.errors import UsageError

router = APIRouter(responses=ERRORS)
FILTERS = ("scenarioId", "configurationId", "executableIds", "status")
STATUSES = ("UNKNOWN", "PENDING", "RUNNING", "COMPLETED", "DEAD", "STOPPING", "STOPPED")


def resume(svc: Any) -> None:
    """At server start: a store with open deployments and no live deployment manager gets one
    (after a reboot the predictors are started again, or end DEAD with the reason)."""
    deploy.wake(svc)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _query(request: Request) -> Any:
    svc = scoped(request)
    q = request.query_params
    status = q.get("status")
    if status and status not in STATUSES:
        raise wire.BadRequest(f"status must be one of {', '.join(STATUSES)}")
    return svc, deploy.records(svc).query(svc.rg, scenario_id=q.get("scenarioId"),
                                          configuration_id=q.get("configurationId"),
                                          executable_ids=wire.csv(q.get("executableIds")), status=status)


@router.post("/v2/lm/deployments", status_code=202, response_model=None,
             responses={202: {"model": md.DeploymentCreated}})
async def create_deployment(request: Request, payload: md.DeploymentIn) -> Response:
    svc = scoped(request)
    if bool(payload.configurationId) == bool(payload.model):
        raise UsageError("give configurationId (or, as an extension, model: models:/NAME@ALIAS)")
    configuration_id = payload.configurationId
    if payload.model:
        from orchestrator.control.deploy_configure import configure

        configuration_id = configure(svc, None, model=payload.model)
    assert configuration_id is not None
    row = deploy.create(svc, configuration_id, payload.ttl)
    return json_response({"id": row["id"], "message": "Deployment scheduled", "deploymentUrl": "",
                          "status": row["status"], "ttl": row["ttl"], "configurationId": row["configuration_id"]},
                         202)


@router.get("/v2/lm/deployments", response_model=None, responses={200: {"model": md.DeploymentList}},
            openapi_extra=query(*FILTERS, *PAGING, "$select"))
async def list_deployments(request: Request) -> Response:
    svc, q = _query(request)
    top, skip = wire.paging(request.query_params)
    deploy.wake(svc)  # deployments whose manager stopped (a reboot, a kill) start again
    recs = deploy.records(svc)
    rows = recs.listing(q, limit=top, offset=skip)
    status_only = request.query_params.get("$select") == "status"
    base = _base(request)
    items = [md.deployment_status(r) if status_only else md.deployment(r, base) for r in rows]
    return json_response(wire.listing(items, recs.count(q)))


@router.get("/v2/lm/deployments/$count", response_model=None, responses={200: {"model": int}},
            openapi_extra=query(*FILTERS))
async def count_deployments(request: Request) -> Response:
    svc, q = _query(request)
    return json_response(deploy.records(svc).count(q))


@router.patch("/v2/lm/deployments", status_code=202, response_model=None,
              responses={202: {"model": md.DeploymentBulkOut}})
async def bulk_modify(request: Request, payload: md.DeploymentBulkIn) -> Response:
    svc = scoped(request)
    results = deploy.bulk_modify(svc, [(i.id, i.targetStatus) for i in payload.deployments])
    return json_response({"deployments": results}, 202)


@router.get("/v2/lm/deployments/{deployment_id}", response_model=None,
            responses={200: {"model": md.DeploymentOut}}, openapi_extra=query("$select"))
async def get_deployment(request: Request, deployment_id: str) -> Response:
    svc = scoped(request)
    row = deploy.get(svc, deployment_id)
    deploy.wake(svc)
    if request.query_params.get("$select") == "status":
        return json_response(md.deployment_status(row))
    return json_response(md.deployment(row, _base(request)))


@router.patch("/v2/lm/deployments/{deployment_id}", status_code=202, response_model=None,
              responses={202: {"model": m.IdMessage}})
async def modify_deployment(request: Request, deployment_id: str, payload: md.DeploymentPatch) -> Response:
    svc = scoped(request)
    deploy.modify(svc, deployment_id, target_status=payload.targetStatus, configuration_id=payload.configurationId)
    return json_response({"id": deployment_id, "message": "Deployment modification scheduled"}, 202)


@router.delete("/v2/lm/deployments/{deployment_id}", status_code=202, response_model=None,
               responses={202: {"model": m.IdMessage}})
async def delete_deployment(request: Request, deployment_id: str) -> Response:
    svc = scoped(request)
    deploy.delete(svc, deployment_id)
    return json_response({"id": deployment_id, "message": "Deletion scheduled"}, 202)


@router.get("/v2/lm/deployments/{deployment_id}/logs", response_model=None, responses={200: {"model": m.LogsOut}},
            openapi_extra=query("top", "$top", "start", "end", "order", "$start", "$end", "$order"))
async def deployment_logs(request: Request, deployment_id: str) -> Response:
    svc = scoped(request)
    q = request.query_params
    top, _ = wire.paging(q)
    order = (q.get("order") or q.get("$order") or "asc").lower()
    if order not in ("asc", "desc"):
        raise wire.BadRequest("order must be asc or desc")
    from orchestrator.control.resources import parse_time

    start = parse_time(q.get("start") or q.get("$start"), "start")
    end = parse_time(q.get("end") or q.get("$end"), "end")
    lines = deploy.log_lines(svc, deployment_id, limit=top, tail=order == "desc", start=start, end=end)
    result = [{"msg": line, "timestamp": stamp} for stamp, line in lines]
    if order == "desc":
        result.reverse()
    return json_response({"data": {"result": result}})


__all__ = ["router"]
