"""Routes of the experiment extensions: the model registry (``/v2/lm/models``) and ``/v2/lm/compare``.

Owns: their HTTP shape in the AI API style (camelCase, ``$top``/``$skip`` and ``count`` on lists,
the ``{"error": {...}}`` body through the app's handlers, the request's resource group). The rules
are :mod:`orchestrator.control.registry` and :mod:`orchestrator.control.compare`.
Must not import: app, server, cli.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orchestrator.api import models_experiments as mx
from orchestrator.api import wire
from orchestrator.api.deps import ERRORS, PAGING, query, scoped
from orchestrator.api.responses import json_response
from orchestrator.control import registry
from orchestrator.control.compare import DEFAULT_LIMIT, compare

router = APIRouter(prefix="/v2/lm", responses=ERRORS)


def _model(m: dict[str, Any]) -> dict[str, Any]:
    return {**m, "aliases": [{"alias": a, "version": v} for a, v in m["aliases"].items()]}


# ---------------------------------------------------------------------- models
@router.get("/models", response_model=None, responses={200: {"model": mx.RegisteredModelList}},
            openapi_extra=query("executionId", *PAGING))
async def list_models(request: Request) -> Response:
    """Registered models; with ``executionId`` only those that execution produced a version of, each
    with those versions (the trained model of a run)."""
    svc = scoped(request)
    top, skip = wire.paging(request.query_params)
    eid = request.query_params.get("executionId") or None
    if eid is not None:
        svc.store.execution_row(svc.rg, eid)  # NotFound outside the group
    items = []
    for m in svc.store.list_models(svc.rg, execution_id=eid, limit=top, offset=skip):
        item = _model(m)
        if eid is not None:
            item["versions"] = [registry.version_json(v)
                                for v in svc.store.list_model_versions(svc.rg, m["name"], execution_id=eid)]
        items.append(item)
    return json_response(wire.listing(items, svc.store.count_models(svc.rg, execution_id=eid)))


@router.get("/models/$count", response_model=None, responses={200: {"model": int}},
            openapi_extra=query("executionId"))
async def count_models(request: Request) -> Response:
    svc = scoped(request)
    eid = request.query_params.get("executionId") or None
    if eid is not None:
        svc.store.execution_row(svc.rg, eid)
    return json_response(svc.store.count_models(svc.rg, execution_id=eid))


@router.get("/models/{name}", response_model=None, responses={200: {"model": mx.RegisteredModelOut}})
async def get_model(request: Request, name: str) -> Response:
    svc = scoped(request)
    return json_response(_model(svc.store.get_model(svc.rg, name)))


@router.get("/models/{name}/versions", response_model=None, responses={200: {"model": mx.ModelVersionList}},
            openapi_extra=query(*PAGING))
async def list_versions(request: Request, name: str) -> Response:
    svc = scoped(request)
    model = svc.store.get_model(svc.rg, name)
    top, skip = wire.paging(request.query_params)
    items = [registry.version_json(v) for v in svc.store.list_model_versions(svc.rg, name, limit=top, offset=skip)]
    return json_response(wire.listing(items, model["versionCount"]))


@router.post("/models/{name}/versions", status_code=201, response_model=None,
             responses={201: {"model": mx.ModelVersionOut}})
async def register_version(request: Request, name: str, payload: mx.VersionIn) -> Response:
    svc = scoped(request)
    mv = registry.register(svc.store, svc.rg, name, execution_id=payload.executionId, output=payload.output,
                           artifact_id=payload.artifactId, description=payload.description,
                           tags=[(t.key, t.value) for t in payload.tags])
    return json_response(registry.version_json(mv), 201)


@router.get("/models/{name}/versions/{version}", response_model=None,
            responses={200: {"model": mx.ModelVersionOut}})
async def get_version(request: Request, name: str, version: int) -> Response:
    """One version with its lineage (execution, configuration, parameters, metrics, inputs)."""
    svc = scoped(request)
    mv = svc.store.get_model_version(svc.rg, name, version)
    return json_response({**registry.version_json(mv), "lineage": registry.lineage(svc.store, svc.rg, mv)})


@router.patch("/models/{name}/versions/{version}", response_model=None,
              responses={200: {"model": mx.ModelVersionOut}})
async def patch_version(request: Request, name: str, version: int, payload: mx.VersionPatch) -> Response:
    svc = scoped(request)
    mv = svc.store.update_model_version(svc.rg, name, version, description=payload.description,
                                        tags=None if payload.tags is None else [(t.key, t.value) for t in payload.tags])
    return json_response(registry.version_json(mv))


@router.get("/models/{name}/aliases", response_model=None, responses={200: {"model": mx.AliasList}})
async def list_aliases(request: Request, name: str) -> Response:
    svc = scoped(request)
    items = _model(svc.store.get_model(svc.rg, name))["aliases"]
    return json_response(wire.listing(items, len(items)))


@router.get("/models/{name}/aliases/{alias}", response_model=None, responses={200: {"model": mx.ModelVersionOut}})
async def get_alias(request: Request, name: str, alias: str) -> Response:
    svc = scoped(request)
    return json_response(registry.version_json(svc.store.model_alias(svc.rg, name, alias)))


@router.put("/models/{name}/aliases/{alias}", response_model=None, responses={200: {"model": mx.AliasMoved}})
async def put_alias(request: Request, name: str, alias: str, payload: mx.AliasIn) -> Response:
    """Point the alias at a version (atomically); ``expectedVersion`` makes it a compare-and-set
    (400 INVALID_STATE when someone moved it meanwhile)."""
    svc = scoped(request)
    before = registry.set_alias(svc.store, svc.rg, name, alias, payload.version, expected=payload.expectedVersion)
    return json_response({"model": name, "alias": alias, "version": payload.version, "previousVersion": before,
                          "message": "Alias moved" if before is not None else "Alias created"})


@router.delete("/models/{name}/aliases/{alias}", response_model=None, responses={200: {"model": mx.AliasMoved}})
async def delete_alias(request: Request, name: str, alias: str) -> Response:
    svc = scoped(request)
    before = svc.store.delete_model_alias(svc.rg, name, alias)
    return json_response({"model": name, "alias": alias, "previousVersion": before, "message": "Alias deleted"})


# ---------------------------------------------------------------------- compare
@router.get("/compare", response_model=None, responses={200: {"model": mx.CompareOut}},
            openapi_extra=query("executionIds", "scenarioId", "executableId", "sort", *PAGING))
async def compare_executions(request: Request) -> Response:
    """Executions side by side (``executionIds`` comma-separated, or ``scenarioId`` / ``executableId``):
    ``$top`` bounds how many executions are compared (newest, default 1000), ``$skip`` pages the
    sorted rows."""
    svc = scoped(request)
    q = request.query_params
    top, skip = wire.paging(q)
    given = q.get("$top", q.get("top"))
    result = compare(svc.store, svc.rg, execution_ids=wire.csv(q.get("executionIds")),
                     scenario_id=q.get("scenarioId") or None, executable_id=q.get("executableId") or None,
                     sort=q.get("sort") or None, limit=max(1, top) if given else DEFAULT_LIMIT)
    rows = result.pop("executions")
    result["resources"] = rows[skip:] if top else []
    return json_response(result)
