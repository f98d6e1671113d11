"""Routes of the sweep extension: ``/v2/lm/sweeps`` in the AI API style.

Owns: the HTTP shape of sweeps (create from a ``Sweep`` document in the JSON body (read by the same safe loader as files); list
with ``$top``/``$skip`` and ``count``; get; ``PATCH`` with ``targetStatus`` ``STOPPED`` (stop) or ``RUNNING`` (resume); the trials
of one sweep; an Azure ML sweep job document is accepted too), and ``POST /v2/lm/azureml/jobs``
(an Azure ML command or sweep job: a background execution or sweep; ``jobDir`` names the job
file's folder, where the server resolves ``code`` and local inputs: the same machine, see
:mod:`orchestrator.control.azureml_remote`), scoped by the request's resource group and authorised by the app's gate like every
``/v2/lm`` route (reads need ``read``, writes ``run``). A created sweep runs in a detached
background process (:func:`orchestrator.control.sweep_admin.start_sweep`). The rules live in
:mod:`orchestrator.control.sweep_admin`. Must not import: app, server, cli.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from orchestrator.api import models as m
from orchestrator.api import wire
from orchestrator.api.deps import ERRORS, PAGING, principal, query, scoped
from orchestrator.api.responses import json_response
from orchestrator.control import azureml_remote, sweep_admin
from orchestrator.errors import Forbidden, UsageError

router = APIRouter(prefix="/v2/lm", responses=ERRORS)

_DOCUMENT = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "description": "a Sweep document (apiVersion orchestrator/v1, "
                                    "kind Sweep; schemas/sweep.schema.json) or an Azure ML sweep job (CLI v2 YAML "
                                    "as JSON, or the REST body with properties.jobType Sweep)"}}}}}
_JOB = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": "an Azure ML command or sweep job (CLI v2 YAML as JSON, or the REST body); "
    "schemas/azureml-*.schema.json"}}}},
    "parameters": [{"name": "jobDir", "in": "query", "schema": {"type": "string"},
                    "description": "absolute folder on the server's machine where code and local inputs resolve"},
                   {"name": "jobFile", "in": "query", "schema": {"type": "string"},
                    "description": "the job file's name (no folders): recorded as the job's source"},
                   {"name": "parameter", "in": "query", "schema": {"type": "array", "items": {"type": "string"}},
                    "description": "NAME=VALUE: a literal input"},
                   {"name": "artifact", "in": "query", "schema": {"type": "array", "items": {"type": "string"}},
                    "description": "NAME=PATH|URL|ID: a data input"}]}
_PATCH = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["targetStatus"], "properties": {"targetStatus": {"enum": ["STOPPED", "RUNNING"]}}}}}}}


def _job_author(request: Request) -> None:
    """An Azure ML job carries its own command, run as a process of the server's user: as much power
    as registering a template (an unscoped admin's), never a ``run`` token's, whose executions run
    only what an admin registered."""
    who = principal(request)
    if who.get("role") != "admin" or who.get("rg"):
        raise Forbidden("an Azure ML job runs its own command on the server's machine: it needs an admin token "
                        "not limited to a resource group",
                        hint="register the job's code as a template (git sync) and run it with a run token, "
                             "or run the job locally: orchestrator run JOB.yml")


@router.post("/sweeps", status_code=202, response_model=None, openapi_extra=_DOCUMENT)
async def create_sweep(request: Request) -> Response:
    """Validate a Sweep document against the registered executable, store it and start it."""
    svc = scoped(request)
    body = await request.body()
    if azureml_remote.is_job(body):
        _job_author(request)
        job = await run_in_threadpool(_submit, svc, body, request.query_params.get("jobDir"), [], [], "sweep",
                                      request.query_params.get("jobFile"))
        return json_response({"id": job["id"], "message": "Sweep scheduled", "status": job["status"],
                              "targetStatus": "COMPLETED"}, 202)
    row = sweep_admin.start_sweep(svc, body, "request body")
    return json_response({"id": row.id, "message": "Sweep scheduled", "status": row.status,
                          "targetStatus": row.target_status}, 202)


@router.get("/sweeps", response_model=None, openapi_extra=query(*PAGING))
async def list_sweeps(request: Request) -> Response:
    svc = scoped(request)
    top, skip = wire.paging(request.query_params)
    items = sweep_admin.list_sweeps(svc, limit=top, offset=skip)
    return json_response(wire.listing(items, sweep_admin.count_sweeps(svc)))


@router.get("/sweeps/{sweep_id}", response_model=None)
async def get_sweep(request: Request, sweep_id: str) -> Response:
    svc = scoped(request)
    return json_response(sweep_admin.sweep_json(svc, sweep_id, trials=False))


@router.patch("/sweeps/{sweep_id}", status_code=202, response_model=None, openapi_extra=_PATCH)
async def modify_sweep(request: Request, sweep_id: str) -> Response:
    """``{"targetStatus": "STOPPED"}`` stops the sweep (no new trials, running ones end STOPPED);
    ``RUNNING`` resumes a sweep whose process ended (stopped, crashed): finished trials stay."""
    svc = scoped(request)
    try:
        payload: Any = await request.json()
    except ValueError:
        raise UsageError("the body must be JSON: {\"targetStatus\": \"STOPPED\"}") from None
    target = payload.get("targetStatus") if isinstance(payload, dict) else None
    if target not in ("STOPPED", "RUNNING"):
        raise UsageError("targetStatus must be STOPPED or RUNNING")
    row = sweep_admin.stop_sweep(svc, sweep_id) if target == "STOPPED" else sweep_admin.restart_sweep(svc, sweep_id)
    return json_response({"id": row.id, "message": "Sweep modification scheduled", "status": row.status,
                          "targetStatus": row.target_status}, 202)


@router.get("/sweeps/{sweep_id}/trials", response_model=None, responses={200: {"model": m.SweepTrialList}},
            openapi_extra=query(*PAGING))
async def list_trials(request: Request, sweep_id: str) -> Response:
    svc = scoped(request)
    top, skip = wire.paging(request.query_params)
    data = sweep_admin.sweep_json(svc, sweep_id)
    trials = data["trials"]
    return json_response(wire.listing(trials[skip:skip + top], len(trials)))


@router.post("/azureml/jobs", status_code=202, response_model=None, openapi_extra=_JOB)
async def create_azureml_job(request: Request) -> Response:
    """An Azure ML command job (-> a background execution) or sweep job (-> a background sweep).
    Checked and snapshotted (the code folder is copied) in the threadpool on a store connection
    of its own, never on the event loop."""
    svc = scoped(request)
    _job_author(request)
    body = await request.body()
    q = request.query_params
    job = await run_in_threadpool(_submit, svc, body, q.get("jobDir"), q.getlist("parameter"), q.getlist("artifact"),
                                  None, q.get("jobFile"))
    return json_response({**job, "message": f"{job['kind'].capitalize()} scheduled"}, 202)


def _submit(svc: Any, body: bytes, job_dir: str | None, params: list[str], artifacts: list[str],
            kind: str | None = None, job_file: str | None = None) -> dict[str, Any]:
    import copy

    local = copy.copy(svc)
    local.store = svc.store.clone()
    try:
        return azureml_remote.submit_job(local, body, job_dir, params, artifacts, kind=kind, job_file=job_file)
    finally:
        local.store.close()
