"""Routes of the catalog: scenarios, versions, executables, artifacts, configurations, meta, healthz.

Owns: the HTTP shape of those resources (AI API v2, reference §4.3). Reads go to the store
through the request's resource group; writes through :mod:`orchestrator.control.resources`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orchestrator.api import models as m
from orchestrator.api import wire
from orchestrator.api.deps import ERRORS, PAGING, page, query, scoped
from orchestrator.api.responses import json_response
from orchestrator.control import resources
from orchestrator.model import ARTIFACT_KINDS

router = APIRouter(prefix="/v2/lm", responses=ERRORS)


def _selector(text: str | None) -> list[tuple[str, str, bool]]:
    out = []
    for part in wire.csv(text):
        neg = "!=" in part
        key, _, value = part.partition("!=" if neg else "=")
        if not key:
            raise wire.BadRequest(f"bad label selector {part[:80]!r}", hint="use key=value or key!=value")
        out.append((key, value, not neg))
    return out


# ---------------------------------------------------------------------- scenarios
@router.get("/scenarios", response_model=None, responses={200: {"model": m.ScenarioList}})
async def list_scenarios(request: Request) -> Response:
    svc = scoped(request)
    items = [wire.scenario(r) for r in svc.store.list_scenarios(svc.rg)]
    return json_response(wire.listing(items, len(items)))


@router.get("/scenarios/{scenario_id}", response_model=None, responses={200: {"model": m.ScenarioOut}})
async def get_scenario(request: Request, scenario_id: str) -> Response:
    svc = scoped(request)
    return json_response(wire.scenario(svc.store.get_scenario(svc.rg, scenario_id)))


@router.get("/scenarios/{scenario_id}/versions", response_model=None, responses={200: {"model": m.VersionList}},
            openapi_extra=query("labelSelector"))
async def list_versions(request: Request, scenario_id: str) -> Response:
    svc = scoped(request)
    items = [wire.version(r) for r in svc.store.list_versions(svc.rg, scenario_id)]
    return json_response(wire.listing(items, len(items)))


@router.get("/scenarios/{scenario_id}/executables", response_model=None,
            responses={200: {"model": m.ExecutableList}}, openapi_extra=query("versionId"))
async def list_executables(request: Request, scenario_id: str) -> Response:
    svc = scoped(request)
    ids = svc.store.executable_ids(svc.rg, scenario_id, request.query_params.get("versionId"))
    items = [wire.executable(svc.store.get_executable(svc.rg, i)) for i in ids]
    return json_response(wire.listing(items, len(items)))


@router.get("/scenarios/{scenario_id}/executables/{executable_id}", response_model=None,
            responses={200: {"model": m.ExecutableOut}})
async def get_executable(request: Request, scenario_id: str, executable_id: str) -> Response:
    svc = scoped(request)
    if executable_id not in svc.store.executable_ids(svc.rg, scenario_id):
        raise resources.NotFound(f"executable {executable_id!r} not found in scenario {scenario_id!r}")
    return json_response(wire.executable(svc.store.get_executable(svc.rg, executable_id)))


# ---------------------------------------------------------------------- artifacts
ARTIFACT_FILTERS = ("scenarioId", "executionId", "name", "kind", "artifactLabelSelector", "$search",
                    "searchCaseInsensitive", "$expand")
CONFIG_FILTERS = ("scenarioId", "executableIds", "$search", "searchCaseInsensitive", "$expand")


def _artifact_query(request: Request) -> Any:
    svc = scoped(request)
    q = request.query_params
    kind = q.get("kind")
    if kind and kind not in ARTIFACT_KINDS:
        raise wire.BadRequest(f"kind must be one of {', '.join(ARTIFACT_KINDS)}")
    return svc, svc.store.query_artifacts(
        svc.rg, scenario_id=q.get("scenarioId"), execution_id=q.get("executionId"), name=q.get("name"), kind=kind,
        search=q.get("$search"), case_insensitive=wire.truthy(q.get("searchCaseInsensitive")),
        label_selector=_selector(q.get("artifactLabelSelector")))


@router.post("/artifacts", status_code=201, response_model=None, responses={201: {"model": m.ArtifactCreated}})
async def create_artifact(request: Request, payload: m.ArtifactIn) -> Response:
    svc = scoped(request)
    a = resources.create_artifact(svc, name=payload.name, kind=payload.kind, url=payload.url,
                                scenario_id=payload.scenarioId, description=payload.description or "",
                                labels=[(x.key, x.value) for x in payload.labels or []])
    return json_response({"id": a.id, "message": "Artifact acknowledged", "url": a.url}, 201)


@router.get("/artifacts", response_model=None, responses={200: {"model": m.ArtifactList}},
            openapi_extra=query(*ARTIFACT_FILTERS, *PAGING))
async def list_artifacts(request: Request) -> Response:
    svc, q = _artifact_query(request)
    return page(request, svc, q, svc.store.ARTIFACT_COLS, wire.artifact)


@router.get("/artifacts/$count", response_model=None, responses={200: {"model": int}},
            openapi_extra=query(*ARTIFACT_FILTERS))
async def count_artifacts(request: Request) -> Response:
    svc, q = _artifact_query(request)
    return json_response(svc.store.count_query(q))


@router.get("/artifacts/{artifact_id}", response_model=None, responses={200: {"model": m.ArtifactOut}},
            openapi_extra=query("$expand"))
async def get_artifact(request: Request, artifact_id: str) -> Response:
    svc = scoped(request)
    q = svc.store.query_artifacts(svc.rg).eq("id", artifact_id)
    rows = svc.store.run_query(q, svc.store.ARTIFACT_COLS, limit=1)
    if not rows:
        raise resources.NotFound(f"artifact {artifact_id!r} not found")
    out = wire.artifact(rows[0])
    if request.query_params.get("$expand") == "scenario":
        out["scenario"] = wire.scenario(svc.store.get_scenario(svc.rg, rows[0]["scenario_id"]))
    return json_response(out)


# ---------------------------------------------------------------------- configurations
def _config_query(request: Request) -> Any:
    svc = scoped(request)
    q = request.query_params
    return svc, svc.store.query_configurations(
        svc.rg, scenario_id=q.get("scenarioId"), executable_ids=wire.csv(q.get("executableIds")),
        search=q.get("$search"), case_insensitive=wire.truthy(q.get("searchCaseInsensitive")))


@router.post("/configurations", status_code=201, response_model=None, responses={201: {"model": m.IdMessage}})
async def create_configuration(request: Request, payload: m.ConfigurationIn) -> Response:
    svc = scoped(request)
    cfg = resources.create_configuration(
        svc, name=payload.name, scenario_id=payload.scenarioId, executable_id=payload.executableId,
        parameters=[(b.key, b.value) for b in payload.parameterBindings or []],
        artifacts=[(b.key, b.artifactId) for b in payload.inputArtifactBindings or []])
    return json_response({"id": cfg.id, "message": "Configuration created"}, 201)


@router.get("/configurations", response_model=None, responses={200: {"model": m.ConfigurationList}},
            openapi_extra=query(*CONFIG_FILTERS, *PAGING))
async def list_configurations(request: Request) -> Response:
    svc, q = _config_query(request)
    return page(request, svc, q, svc.store.CONFIG_COLS, wire.configuration)


@router.get("/configurations/$count", response_model=None, responses={200: {"model": int}},
            openapi_extra=query(*CONFIG_FILTERS))
async def count_configurations(request: Request) -> Response:
    svc, q = _config_query(request)
    return json_response(svc.store.count_query(q))


@router.get("/configurations/{configuration_id}", response_model=None,
            responses={200: {"model": m.ConfigurationOut}}, openapi_extra=query("$expand"))
async def get_configuration(request: Request, configuration_id: str) -> Response:
    svc = scoped(request)
    rows = svc.store.run_query(svc.store.query_configurations(svc.rg).eq("id", configuration_id),
                               svc.store.CONFIG_COLS, limit=1)
    if not rows:
        raise resources.NotFound(f"configuration {configuration_id!r} not found")
    out = wire.configuration(rows[0])
    if request.query_params.get("$expand") == "scenario":
        out["scenario"] = wire.scenario(svc.store.get_scenario(svc.rg, rows[0]["scenario_id"]))
    return json_response(out)


# ---------------------------------------------------------------------- meta
META = {
    "runtimeIdentifier": "orchestrator", "runtimeApiVersion": "2.42.0", "description": "orchestrator (local AI API)",
    "aiApi": {
        "version": "2.42.0",
        "capabilities": {"logs": {"executions": True, "deployments": True}, "basic": {},
                         "bulkUpdates": {"executions": True, "deployments": True}, "multitenant": True,
                         "shareable": True, "staticDeployments": False, "userDeployments": True,
                         "userExecutions": True, "timeToLiveDeployments": True, "executionSchedules": True},
        "limits": {"executions": {"maxRunningCount": -1}, "deployments": {"maxRunningCount": -1}},
    },
    "extensions": {},
}


@router.get("/meta", response_model=None)
async def meta(request: Request) -> Response:
    return json_response(META)


@router.get("/meta/versions", response_model=None)
async def meta_versions(request: Request) -> Response:
    return json_response({"versions": [{"version": "2.42.0"}]})


_READY = wire.dumps({"status": "READY", "message": "orchestrator is ready"})  # what probes poll: encoded once


@router.get("/healthz", response_model=None)
async def healthz(request: Request) -> Response:
    return Response(_READY, media_type="application/json")


__all__ = ["router"]
