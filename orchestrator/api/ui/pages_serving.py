"""Dashboard routes: sweeps (list, one sweep with its trials and charts, stop) and deployments
(list, one deployment with its log follow, stop, delete and the "try it" predict form).

Owns: the HTTP shape of those pages and of the JSON their scripts poll. Data comes from
:mod:`orchestrator.control.dashboard_serving`; actions go through
:mod:`orchestrator.control.sweep_admin` and :mod:`orchestrator.control.deploy`, always with the
session's scoped service (another group's id is a 404). The predict form's JSON travels as a form
field (the gate accepts only forms, with their CSRF token) and is sent to the predictor through
the same relay as the server's inference proxy (:func:`orchestrator.api.inference_relay.relay`).
Registered through :func:`orchestrator.api.ui.add_nav`.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from orchestrator.api.ui import render, scoped
from orchestrator.control import dashboard_serving as ds
from orchestrator.control import deploy, sweep_admin
from orchestrator.errors import UsageError

MAX_PATH = 300
SHOWN_BYTES = 64 * 1024  # of a predictor's answer, on the page
DEFAULT_PATH = "invocations"
DEFAULT_BODY = '{"instances": [[0, 0], [1, 1]]}'


def _form(request: Request) -> dict[str, str]:
    return request.scope["state"].get("form", {})


def _offset(text: str | None) -> int:
    """A non-negative number from the query (an offset or a page)."""
    try:
        return min(max(0, int(text or 0)), 1 << 40)
    except ValueError:
        raise UsageError(f"not a number: {(text or '')[:20]!r}") from None


# ---------------------------------------------------------------------- sweeps
async def sweeps(request: Request) -> Response:
    svc = scoped(request)
    return render(request, "sweeps.html", active="sweeps", rows=ds.list_sweeps(svc))


async def sweep(request: Request) -> Response:
    svc = scoped(request)
    page = _offset(request.query_params.get("page")) or 1
    return render(request, "sweep.html", active="sweeps", s=ds.sweep(svc, request.path_params["swid"], page=page))


async def sweep_chart(request: Request) -> Response:
    svc = scoped(request)
    return JSONResponse(ds.sweep_chart(svc, request.path_params["swid"]))


async def sweep_stop(request: Request) -> Response:
    svc = scoped(request)
    swid = request.path_params["swid"]
    sweep_admin.stop_sweep(svc, swid)
    return RedirectResponse(f"/ui/sweeps/{swid}", 303)


# ---------------------------------------------------------------------- deployments
async def deployments(request: Request) -> Response:
    svc = scoped(request)
    return render(request, "deployments.html", active="deployments", rows=ds.list_deployments(svc),
                  base=str(request.base_url).rstrip("/"))


def _deployment_page(request: Request, status: int = 200, **extra: object) -> Response:
    svc = scoped(request)
    d = ds.deployment(svc, request.path_params["did"])
    ctx = {"path": DEFAULT_PATH, "body": DEFAULT_BODY, "answer": None, **extra}
    return render(request, "deployment.html", status, active="deployments", d=d,
                  url=f"{str(request.base_url).rstrip('/')}/v2/inference/deployments/{d['id']}", **ctx)


async def deployment(request: Request) -> Response:
    return _deployment_page(request)


async def deployment_log(request: Request) -> Response:
    svc = scoped(request)
    return JSONResponse(ds.deployment_log_chunk(svc, request.path_params["did"],
                                                _offset(request.query_params.get("offset"))))


async def deployment_stop(request: Request) -> Response:
    svc = scoped(request)
    did = request.path_params["did"]
    deploy.stop(svc, did)
    return RedirectResponse(f"/ui/deployments/{did}", 303)


async def deployment_delete(request: Request) -> Response:
    svc = scoped(request)
    deploy.delete(svc, request.path_params["did"])
    return RedirectResponse("/ui/deployments", 303)


async def deployment_predict(request: Request) -> Response:
    """The "try it" form: its JSON body is checked to be JSON, then POSTed to the predictor at
    ``path`` through the inference relay; the answer is shown (JSON for the page's script, or the
    page itself re-rendered when the browser runs no script)."""
    from orchestrator.api.inference_relay import relay, target_of

    svc = scoped(request)
    did = request.path_params["did"]
    form = _form(request)
    path, text = form.get("path", DEFAULT_PATH).strip().lstrip("/"), form.get("body", "")
    if not path or len(path) > MAX_PATH or any(c in path for c in "\\\r\n#") or ".." in path.split("/"):
        raise UsageError(f"path must be a relative predictor path of at most {MAX_PATH} characters, "
                         f"e.g. {DEFAULT_PATH} or v1/models/NAME:predict")
    try:
        json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the request body is not JSON: {exc}") from None
    ds.deployment(svc, did)  # NotFound for another group's deployment
    path, _, query = path.partition("?")
    resp = await relay(svc, request.app.state, did, "POST", target_of(path, query), text.encode(),
                       [("content-type", "application/json")])
    raw = bytes(resp.body)
    answer = {"status": resp.status_code, "contentType": resp.headers.get("content-type", ""),
              "body": raw[:SHOWN_BYTES].decode("utf-8", "replace"), "truncated": len(raw) > SHOWN_BYTES}
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(answer)
    return _deployment_page(request, path=form.get("path", DEFAULT_PATH), body=text, answer=answer)


routes = [
    Route("/ui/sweeps", sweeps, methods=["GET"]),
    Route("/ui/sweeps/{swid}", sweep, methods=["GET"]),
    Route("/ui/sweeps/{swid}/chart.json", sweep_chart, methods=["GET"]),
    Route("/ui/sweeps/{swid}/stop", sweep_stop, methods=["POST"]),
    Route("/ui/deployments", deployments, methods=["GET"]),
    Route("/ui/deployments/{did}", deployment, methods=["GET"]),
    Route("/ui/deployments/{did}/log.json", deployment_log, methods=["GET"]),
    Route("/ui/deployments/{did}/stop", deployment_stop, methods=["POST"]),
    Route("/ui/deployments/{did}/delete", deployment_delete, methods=["POST"]),
    Route("/ui/deployments/{did}/predict", deployment_predict, methods=["POST"]),
]
__all__ = ["routes"]
