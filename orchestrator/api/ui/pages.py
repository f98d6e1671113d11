"""Dashboard routes: login, logout, resource group switch, the executions page and one execution
(its live state, DAG, logs, metric series and the stop/resume/rerun actions).

Owns: the HTTP shape of those pages and of the JSON the page scripts poll. Data comes from
:mod:`orchestrator.control.dashboard`, :mod:`orchestrator.control.series` and
:mod:`orchestrator.control.actions`, always through the session's scoped service.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from orchestrator.api.ui import env, groups, render, scoped, session_of
from orchestrator.api.ui.session import COOKIE, LOGIN_COOKIE, session_cookie
from orchestrator.control import actions, dashboard, series, tokens
from orchestrator.errors import NotFound, UsageError


def _form(request: Request) -> dict[str, str]:
    return request.scope["state"].get("form", {})


def _int(text: str | None, default: int, lo: int = 0, hi: int = 1 << 40) -> int:
    try:
        return min(max(int(text or default), lo), hi)
    except ValueError:
        raise UsageError(f"not a number: {(text or '')[:20]!r}") from None


def _safe_next(target: str) -> str:
    """Only a path of this dashboard (no scheme, no host, no //)."""
    return target if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target else "/ui/executions"


# ---------------------------------------------------------------------- login
async def login_form(request: Request) -> Response:
    import secrets

    pre = secrets.token_urlsafe(24)
    nxt = _safe_next(request.query_params.get("next", ""))
    resp = render(request, "login.html", pre=pre, next=nxt, error="")
    resp.headers.append("set-cookie", f"{LOGIN_COOKIE}={pre}; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age=3600")
    return resp


async def login(request: Request) -> Response:
    form = _form(request)
    svc = request.app.state.svc
    row = tokens.lookup(svc.store, form.get("token", "").strip())
    if row is None or row["kind"] == "tracking":
        resp = render(request, "login.html", 401, pre=form.get("csrf", ""), next=_safe_next(form.get("next", "")),
                      error="invalid, expired or revoked token")
        return resp
    rg = row["rg"] or _default_group(svc)
    sessions = request.scope["state"]["ui_sessions"]
    s = sessions.create(role=row["role"], token_rg=row["rg"], rg=rg, name=row["name"],
                        digest=tokens.digest(form["token"].strip()))
    resp = RedirectResponse(_safe_next(form.get("next", "")), 303)
    resp.headers.append("set-cookie", session_cookie(s.sid))
    resp.headers.append("set-cookie", f"{LOGIN_COOKIE}=; Path=/ui/login; Max-Age=0")
    return resp


def _default_group(svc: Any) -> str:
    try:
        svc.store.get_resource_group(svc.rg)
        return str(svc.rg)
    except NotFound:
        found = svc.store.list_resource_groups()
        return str(found[0]["id"]) if found else str(svc.rg)


async def login_once(request: Request) -> Response:
    """The one-time URL ``orchestrator ui`` prints: a session as the local administrator."""
    sessions = request.scope["state"]["ui_sessions"]
    rg = sessions.redeem_once(request.query_params.get("code", ""))
    if rg is None:
        return render(request, "error.html", 403, title="403", message="this login link was used or has expired; "
                      "start `orchestrator ui` again or log in with a token")
    s = sessions.create(role="admin", token_rg=None, rg=rg, name="local", digest=None)
    resp = RedirectResponse("/ui/executions", 303)
    resp.headers.append("set-cookie", session_cookie(s.sid))
    return resp


async def logout(request: Request) -> Response:
    request.scope["state"]["ui_sessions"].drop(request.cookies.get(COOKIE, ""))
    resp = RedirectResponse("/ui/login", 303)
    resp.headers.append("set-cookie", session_cookie("", 0))
    return resp


async def switch_group(request: Request) -> Response:
    session = session_of(request)
    rg = _form(request).get("rg", "")
    if rg not in groups(scoped(request), session):
        raise NotFound(f"resource group {rg[:80]!r} not found")
    session.rg = rg
    return RedirectResponse("/ui/executions", 303)


async def home(request: Request) -> Response:
    return RedirectResponse("/ui/executions", 303)


# ---------------------------------------------------------------------- executions
def _filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    return {"status": q.get("status", ""), "scenario": q.get("scenario", ""), "executable": q.get("executable", ""),
            "schedule": q.get("schedule", ""), "since": q.get("since", ""), "until": q.get("until", ""),
            "search": q.get("q", ""), "sweep": q.get("sweep", "")}


async def executions(request: Request) -> Response:
    svc = scoped(request)
    f = _filters(request)
    page = dashboard.list_executions(svc, **f, page=_int(request.query_params.get("page"), 1, 1),
                                     per_page=_int(request.query_params.get("per"), dashboard.DEFAULT_PAGE, 1, 1000))
    qs = urllib.parse.urlencode({k if k != "search" else "q": v for k, v in f.items() if v})
    ctx = {"f": f, "page": page, "qs": qs, "statuses": dashboard.STATUSES, "live": any(
        r["status"] in ("UNKNOWN", "PENDING", "RUNNING", "STOPPING") for r in page["rows"])}
    if request.headers.get("hx-request") and request.query_params.get("part") == "rows":
        return render(request, "_rows.html", **ctx)
    return render(request, "executions.html", active="executions", facets=dashboard.facets(svc), **ctx)


async def execution(request: Request) -> Response:
    svc = scoped(request)
    data = dashboard.execution(svc, request.path_params["eid"])
    return render(request, "execution.html", active="executions", d=data)


async def execution_state(request: Request) -> Response:
    svc = scoped(request)
    eid = request.path_params["eid"]
    out = dashboard.live(svc, eid)
    if request.query_params.get("dag"):
        out["dag"] = dashboard.dag(svc, svc.store.get_execution(svc.rg, eid))
    return JSONResponse(out)


async def execution_log(request: Request) -> Response:
    svc = scoped(request)
    q = request.query_params
    return JSONResponse(dashboard.log_chunk(svc, request.path_params["eid"], q.get("step", ""),
                                            _int(q.get("offset"), 0)))


async def execution_series(request: Request) -> Response:
    svc = scoped(request)
    q = request.query_params
    return JSONResponse(series.series(svc, request.path_params["eid"], name=q.get("name") or None,
                                      max_points=_int(q.get("points"), series.DEFAULT_POINTS, 3, series.MAX_POINTS)))


async def execution_metrics_csv(request: Request) -> Response:
    svc = scoped(request)
    eid = request.path_params["eid"]
    text = series.raw_csv(svc, eid, request.query_params.get("name") or None)
    return PlainTextResponse(text, media_type="text/csv", headers={
        "content-disposition": f'attachment; filename="metrics-{eid}.csv"'})


async def execution_action(request: Request) -> Response:
    svc = scoped(request)
    eid, action = request.path_params["eid"], request.path_params["action"]
    if action == "stop":
        actions.stop(svc, eid)
        target = eid
    elif action == "resume":
        target = actions.resume(svc, eid).id
    elif action == "rerun":
        target = actions.rerun(svc, eid).id
    else:
        raise NotFound(f"no action {action[:20]!r}")
    return RedirectResponse(f"/ui/executions/{target}", 303)


routes = [
    Route("/ui", home, methods=["GET"]),
    Route("/ui/", home, methods=["GET"]),
    Route("/ui/login", login_form, methods=["GET"]),
    Route("/ui/login", login, methods=["POST"]),
    Route("/ui/login/once", login_once, methods=["GET"]),
    Route("/ui/logout", logout, methods=["POST"]),
    Route("/ui/rg", switch_group, methods=["POST"]),
    Route("/ui/executions", executions, methods=["GET"]),
    Route("/ui/executions/{eid}", execution, methods=["GET"]),
    Route("/ui/executions/{eid}/state.json", execution_state, methods=["GET"]),
    Route("/ui/executions/{eid}/log.json", execution_log, methods=["GET"]),
    Route("/ui/executions/{eid}/series.json", execution_series, methods=["GET"]),
    Route("/ui/executions/{eid}/metrics.csv", execution_metrics_csv, methods=["GET"]),
    Route("/ui/executions/{eid}/{action}", execution_action, methods=["POST"]),
]
__all__ = ["routes", "env"]
