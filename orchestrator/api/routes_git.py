"""Git sync routes: ``/v2/admin/repositories`` and ``/v2/admin/applications`` (+ ``/status``, ``/refresh``).

Owns: the AI Core wire shape of repositories and applications (reference §4.3) over
:mod:`orchestrator.control.syncing` through the service. Admin role (the gate checks ``/v2/admin``).
Repository passwords are accepted, stored as secrets and never returned. An application's
objects go to the resource group named by ``AI-Resource-Group`` (default ``default``), which
must be a valid id of an existing group (400 / 404; a reserved name never becomes a group). The
status lists every file of the application with its result and, for a rejected file, its
``file:line:col`` errors (under ``syncResourcesStatus``, which sap-ai-sdk-core reads, and AI Core's
old spelling ``syncRessourcesStatus``). ``PATCH`` changes a repository's credentials or an
application's repository / path / revision (the SDK's ``modify``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, StringConstraints

from orchestrator.api.deps import ERRORS
from orchestrator.api.responses import json_response
from orchestrator.api.wire import listing, paging
from orchestrator.control import sweep_admin, syncing
from orchestrator.control.service import Service
from orchestrator.errors import NotFound

router = APIRouter(responses=ERRORS)
Short = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class RepositoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Short
    url: Url
    username: Short | None = None
    password: Annotated[str, StringConstraints(max_length=65536)] | None = None


class RepositoryPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Short | None = None
    password: Annotated[str, StringConstraints(max_length=65536)] | None = None


class ApplicationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repositoryUrl: Url | None = None
    repositoryName: Short | None = None
    revision: Short | None = None
    path: Short | None = None


class ApplicationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    applicationName: Short | None = None
    repositoryUrl: Url | None = None
    repositoryName: Short | None = None
    revision: Short = "HEAD"
    path: Short = "."


def _svc(request: Request) -> Service:
    svc: Service = request.app.state.svc
    return svc


def _repo(r: dict[str, Any]) -> dict[str, Any]:
    out = {"name": r["name"], "url": r["url"], "status": r["status"]}
    if r.get("message"):
        out["message"] = r["message"]
    return out


def _app(svc: Service, a: dict[str, Any]) -> dict[str, Any]:
    return {"applicationName": a["name"], "repositoryUrl": svc.store.get_repository(a["repository"])["url"],
            "repositoryName": a["repository"], "revision": a["revision"], "path": a["path"],
            "resourceGroupId": a["rg"]}


# ---------------------------------------------------------------------- repositories
@router.post("/v2/admin/repositories", response_model=None)
async def create_repository(request: Request, payload: RepositoryIn) -> Response:
    _svc(request).add_repository(payload.name, payload.url, username=payload.username, password=payload.password)
    return json_response({"id": payload.name, "message": "Repository has been on-boarded."})


@router.get("/v2/admin/repositories", response_model=None)
async def list_repositories(request: Request) -> Response:
    top, skip = paging(request.query_params)
    items = [_repo(r) for r in _svc(request).store.list_repositories()]
    return json_response(listing(items[skip:skip + top], len(items)))


@router.get("/v2/admin/repositories/{name}", response_model=None)
async def get_repository(request: Request, name: str) -> Response:
    return json_response(_repo(_svc(request).store.get_repository(name)))


@router.patch("/v2/admin/repositories/{name}", response_model=None)
async def modify_repository(request: Request, name: str, payload: RepositoryPatch) -> Response:
    """New credentials (``repositories.modify`` of the SDK); stored as a secret, never returned."""
    syncing.modify_repository(_svc(request).store, name, username=payload.username, password=payload.password)
    return json_response({"id": name, "message": "Repository has been modified."})


@router.delete("/v2/admin/repositories/{name}", response_model=None)
async def delete_repository(request: Request, name: str) -> Response:
    _svc(request).store.delete_repository(name)
    return json_response({"id": name, "message": "The repository has been off-boarded."})


# ---------------------------------------------------------------------- applications
def _repository_by_url(svc: Service, url: str | None) -> str:
    by_url = [r["name"] for r in svc.store.list_repositories() if r["url"] == url]
    if not by_url:
        raise NotFound(f"no repository with URL {url!r} is on-boarded", hint="POST /v2/admin/repositories first")
    return str(by_url[0])


@router.post("/v2/admin/applications", response_model=None)
async def create_application(request: Request, payload: ApplicationIn) -> Response:
    svc = _svc(request)
    repo = payload.repositoryName or _repository_by_url(svc, payload.repositoryUrl)
    name = payload.applicationName or repo
    syncing.add_application(svc.store, name, repository=repo, path=payload.path, revision=payload.revision,
                            rg=request.headers.get("ai-resource-group") or "default")  # an existing group
    return json_response({"id": name, "message": "Application has been successfully created."})


@router.get("/v2/admin/applications", response_model=None)
async def list_applications(request: Request) -> Response:
    svc = _svc(request)
    top, skip = paging(request.query_params)
    items = [_app(svc, a) for a in svc.store.list_applications()]
    return json_response(listing(items[skip:skip + top], len(items)))


@router.get("/v2/admin/applications/{name}", response_model=None)
async def get_application(request: Request, name: str) -> Response:
    svc = _svc(request)
    return json_response(_app(svc, svc.store.get_application(name)))


@router.patch("/v2/admin/applications/{name}", response_model=None)
async def modify_application(request: Request, name: str, payload: ApplicationPatch) -> Response:
    """Another repository / path / revision (``applications.modify`` of the SDK); the next sync
    (interval or ``refresh``) applies it in full."""
    svc = _svc(request)
    svc.store.get_application(name)
    repo = payload.repositoryName or (_repository_by_url(svc, payload.repositoryUrl)
                                      if payload.repositoryUrl is not None else None)
    syncing.modify_application(svc.store, name, repository=repo, path=payload.path, revision=payload.revision)
    return json_response({"id": name, "message": "Application has been modified."})


@router.delete("/v2/admin/applications/{name}", response_model=None)
async def delete_application(request: Request, name: str) -> Response:
    _svc(request).store.delete_application(name)
    return json_response({"id": name, "message": "Application has been deleted."})


@router.post("/v2/admin/applications/{name}/refresh", status_code=202, response_model=None)
def refresh_application(request: Request, name: str) -> Response:
    """Sync now (AI Core queues it; here it is done when the answer comes, so a status read after
    it sees the result).

    A plain ``def``: FastAPI runs it in its threadpool, so a slow fetch (git's timeouts) or a wait
    for the sync lock the background loop holds never stalls the event loop. It therefore uses
    its own store connection, never the event loop's.
    """
    svc = _svc(request)
    store = svc.store.clone()
    try:
        report = syncing.sync_application(store, svc.home, name,
                                          start=sweep_admin.synced_starter(svc.home, svc.tracking_base))
    finally:
        store.close()
    return json_response({"id": name, "message": f"Sync has been triggered: {report.status}"}, 202)


@router.get("/v2/admin/applications/{name}/status", response_model=None)
async def application_status(request: Request, name: str) -> Response:
    svc = _svc(request)
    a = svc.store.get_application(name)
    files = svc.store.application_files(name)
    resources = [{"name": o["name"], "kind": o["kind"], "id": o["id"], "path": f["path"],
                  "status": "Synced" if f["status"] == "valid" else "OutOfSync",
                  "message": f.get("note") or ""} for f in files for o in f["objects"]]
    return json_response({
        "healthStatus": "Healthy" if a["sync_status"] in ("SYNCED", "UNCHANGED") else
        "Degraded" if a["sync_status"] in ("SYNCED_WITH_ERRORS", "ERROR") else "Progressing",
        "syncStatus": {"SYNCED": "Synced", "SYNCED_WITH_ERRORS": "OutOfSync", "ERROR": "Unknown"}.get(
            a["sync_status"], "Unknown"),
        "message": a["message"] or "", "source": {"repoURL": svc.store.get_repository(a["repository"])["url"],
                                                   "path": a["path"], "revision": a["revision"]},
        "commitSha": a["last_commit"], "syncStartedAt": a["sync_started_at"], "syncFinishedAt": a["last_sync_at"],
        "reconciledAt": a["last_sync_at"], "syncResourcesStatus": resources, "syncRessourcesStatus": resources,
        "files": [{"path": f["path"], "status": f["status"], "errors": f["errors"], "warnings": f["warnings"],
                   "note": f.get("note") or "", "objects": f["objects"]} for f in files]})
