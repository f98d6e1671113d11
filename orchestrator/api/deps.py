"""What every router needs from a request: the service scoped to its resource group, the
authenticated principal, and the error responses published in the OpenAPI document.

Owns nothing else; the checks themselves happen in :class:`orchestrator.api.app.Gate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from orchestrator.api import models as m
from orchestrator.control.service import Service
from orchestrator.errors import UsageError

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": m.ErrorOut} for code in (400, 401, 403, 404, 413, 415)
}


_PAGE = {"type": "integer", "minimum": 0}
QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "top": _PAGE, "$top": _PAGE, "skip": _PAGE, "$skip": _PAGE,
    "searchCaseInsensitive": {"type": "boolean"},
    "kind": {"type": "string", "enum": ["model", "dataset", "resultset", "other"]},
    "order": {"type": "string", "enum": ["asc", "desc"]},
    "$expand": {"type": "string", "enum": ["scenario"]},
}


def query(*names: str) -> dict[str, Any]:
    """``openapi_extra`` publishing the optional query parameters a handler reads itself from
    ``request.query_params`` (so clients and schemathesis see them)."""
    return {"parameters": [{"name": n, "in": "query", "required": False,
                            "schema": QUERY_SCHEMAS.get(n, {"type": "string"})} for n in names]}


PAGING = ("top", "skip", "$top", "$skip")


def scoped(request: Request) -> Service:
    """The service acting in the request's resource group (set by the gate from the header)."""
    rg = request.scope.get("state", {}).get("rg")
    if not rg:
        raise UsageError("header AI-Resource-Group is required")
    # One scoped view per group (a shallow copy of the shared service), not one per request.
    views: dict[str, Service] = request.app.state.scoped_views
    svc = views.get(rg)
    if svc is None:
        if len(views) >= 1024:
            views.clear()
        svc = views[rg] = request.app.state.svc.scoped(rg)
    return svc


def principal(request: Request) -> dict[str, Any]:
    return dict(request.scope.get("state", {}).get("principal") or {})


def page(request: Request, svc: Service, query: Any, cols: str, render: Callable[[Any], dict[str, Any]]) -> Response:
    """A list answer ``{count, resources}``: one page (``top``/``$top``, ``skip``/``$skip``) of the
    scoped query, rendered, and the count of all it matches."""
    from orchestrator.api import wire
    from orchestrator.api.responses import json_response

    top, skip = wire.paging(request.query_params)
    rows = svc.store.run_query(query, cols, limit=top, offset=skip)
    return json_response(wire.listing([render(r) for r in rows], svc.store.count_query(query)))
