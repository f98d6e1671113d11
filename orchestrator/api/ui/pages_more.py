"""Dashboard routes: compare runs, models (versions, aliases, lineage, moving an alias), execution
schedules (next and past slots) and git applications (per-file sync status).

Owns: the HTTP shape of those pages. Data comes from :mod:`orchestrator.control.compare`,
:mod:`orchestrator.control.registry`, :mod:`orchestrator.control.actions` and the store's scoped
reads; the git pages are tenant-wide like ``/v2/admin/applications``, so only an administrator
without a resource group limit sees them.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from orchestrator.api.ui import render, scoped, session_of
from orchestrator.control import actions, dashboard, registry
from orchestrator.control.compare import compare as compare_runs
from orchestrator.errors import Forbidden, UsageError

MAX_COMPARE = 200
SHOWN = ("best", "last", "min", "max")  # which value of each metric the compare table shows


def _ids(request: Request) -> list[str]:
    ids = [i for raw in request.query_params.getlist("ids") for i in raw.replace(" ", ",").split(",") if i]
    if len(ids) > MAX_COMPARE:
        raise UsageError(f"at most {MAX_COMPARE} executions at once, got {len(ids)}")
    return list(dict.fromkeys(ids))


def _comparison(request: Request) -> dict[str, object] | None:
    svc = scoped(request)
    q = request.query_params
    ids, executable = _ids(request), q.get("executable") or None
    if not ids and not executable:
        return None
    return compare_runs(svc.store, svc.rg, execution_ids=ids, executable_id=executable,
                        sort=q.get("sort") or None, limit=MAX_COMPARE)


async def compare(request: Request) -> Response:
    svc = scoped(request)
    data = _comparison(request)
    recent = dashboard.list_executions(svc, status="COMPLETED", per_page=50)["rows"] if data is None else []
    return render(request, "compare.html", active="compare", data=data, recent=recent,
                  executables=dashboard.facets(svc)["executables"], qs=request.url.query,
                  diff=request.query_params.get("diff") == "1",
                  show=request.query_params.get("show") if request.query_params.get("show") in SHOWN else "best")


async def compare_json(request: Request) -> Response:
    return JSONResponse(_comparison(request) or {"executions": [], "parameters": [], "metrics": []})


async def models(request: Request) -> Response:
    svc = scoped(request)
    return render(request, "models.html", active="models", models=svc.store.list_models(svc.rg, limit=500))


async def model(request: Request) -> Response:
    svc = scoped(request)
    name = request.path_params["name"]
    m = svc.store.get_model(svc.rg, name)
    versions = svc.store.list_model_versions(svc.rg, name, limit=200)
    chosen = request.query_params.get("version")
    mv = registry.resolve_version(svc.store, svc.rg, name, chosen) if versions else None
    lineage = registry.lineage(svc.store, svc.rg, mv) if mv else None
    return render(request, "model.html", active="models", m=m, versions=versions, mv=mv, lineage=lineage)


async def move_alias(request: Request) -> Response:
    svc = scoped(request)
    name = request.path_params["name"]
    form = request.scope["state"].get("form", {})
    version = form.get("version", "")
    if not version.isdigit():
        raise UsageError(f"version must be a number, got {version[:20]!r}")
    actions.move_alias(svc, name, form.get("alias", ""), int(version))
    return RedirectResponse(f"/ui/models/{name}", 303)


async def schedules(request: Request) -> Response:
    svc = scoped(request)
    return render(request, "schedules.html", active="schedules", rows=svc.store.list_schedules(svc.rg, limit=500))


async def schedule(request: Request) -> Response:
    svc = scoped(request)
    return render(request, "schedule.html", active="schedules", v=actions.schedule_view(svc, request.path_params["sid"]))


def _admin(request: Request) -> None:
    s = session_of(request)
    if s.role != "admin" or s.token_rg is not None:
        raise Forbidden("git applications are tenant-wide: an admin token without a resource group limit is needed")


async def git_apps(request: Request) -> Response:
    _admin(request)
    svc = scoped(request)
    return render(request, "git.html", active="git", apps=svc.store.list_applications())


async def git_app(request: Request) -> Response:
    _admin(request)
    svc = scoped(request)
    name = request.path_params["name"]
    app = svc.store.get_application(name)
    return render(request, "git_app.html", active="git", app=app, files=svc.store.application_files(name))


routes = [
    Route("/ui/compare", compare, methods=["GET"]),
    Route("/ui/compare.json", compare_json, methods=["GET"]),
    Route("/ui/models", models, methods=["GET"]),
    Route("/ui/models/{name}", model, methods=["GET"]),
    Route("/ui/models/{name}/alias", move_alias, methods=["POST"]),
    Route("/ui/schedules", schedules, methods=["GET"]),
    Route("/ui/schedules/{sid}", schedule, methods=["GET"]),
    Route("/ui/git", git_apps, methods=["GET"]),
    Route("/ui/git/{name}", git_app, methods=["GET"]),
]
