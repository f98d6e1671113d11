"""The web dashboard, served under ``/ui`` by the same server as the REST API.

Owns: the dashboard's ASGI app (a Starlette router behind :class:`~orchestrator.api.ui.session.UiGate`),
mounting it into the API app (:func:`mount`), the Jinja2 environment (autoescaping, templates
and static files shipped in the package: no CDN, no build step), rendering a page with what
every page needs (session, CSRF token, resource groups, navigation), error pages (another
group's id is a 404 as in the REST API), and the navigation's extension point (:data:`NAV`,
:func:`add_nav`): a page of another feature (sweeps, deployments) appends an entry whose
``visible`` callable says whether there is anything to show, so its link appears only when its
data exists. Routes live in :mod:`.pages` and :mod:`.pages_more`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from orchestrator.api.ui.session import PREFIX, Session, Sessions, UiGate
from orchestrator.control.service import Service
from orchestrator.errors import NotFound, OrchestratorError
from orchestrator.plan.sampling import display

HERE = Path(__file__).parent
log = logging.getLogger("orchestrator.ui")


@dataclass(frozen=True)
class NavEntry:
    """A link of the navigation bar. ``visible(svc, session)`` (scoped service) says whether to show it."""

    key: str
    label: str
    href: str
    visible: Callable[[Service, Session], bool]


def _always(svc: Service, session: Session) -> bool:
    return True


def _git_admin(svc: Service, session: Session) -> bool:
    return session.role == "admin" and session.token_rg is None


NAV: list[NavEntry] = [
    NavEntry("executions", "Executions", "/ui/executions", _always),
    NavEntry("compare", "Compare", "/ui/compare", _always),
    NavEntry("models", "Models", "/ui/models", _always),
    NavEntry("schedules", "Schedules", "/ui/schedules", _always),
    NavEntry("git", "Git applications", "/ui/git", _git_admin),
]
ROUTE_MODULES: list[str] = ["orchestrator.api.ui.pages", "orchestrator.api.ui.pages_more"]


def add_nav(entry: NavEntry, routes_module: str | None = None) -> None:
    """Extension point: a feature's page (its routes in ``routes_module``, a module with a
    ``routes`` list) and its navigation entry, shown only when ``entry.visible`` says so."""
    NAV.append(entry)
    if routes_module:
        ROUTE_MODULES.append(routes_module)


_ENV: Any = None


def env() -> Any:
    global _ENV
    if _ENV is None:
        import jinja2

        _ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                                  autoescape=True, trim_blocks=True, lstrip_blocks=True,
                                  undefined=jinja2.Undefined)
        _ENV.filters["dur"] = _dur
        _ENV.filters["short"] = lambda t: (t or "")[:19].replace("T", " ")
        _ENV.filters["num"] = display  # a parameter value as the CLI shows it (full value in a title)
    return _ENV


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def session_of(request: Request) -> Session:
    return request.scope["state"]["ui"]  # type: ignore[no-any-return]


def scoped(request: Request) -> Service:
    """The server's service acting in the session's resource group."""
    session = session_of(request)
    views: dict[str, Service] = request.app.state.views
    svc = views.get(session.rg)
    if svc is None:
        if len(views) >= 1024:
            views.clear()
        svc = views[session.rg] = request.app.state.svc.scoped(session.rg)
    return svc


def groups(svc: Service, session: Session) -> list[str]:
    """The resource groups the session's token may switch to."""
    if session.token_rg is not None:
        return [session.token_rg]
    return [r["id"] for r in svc.store.list_resource_groups()]


def render(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    session: Session | None = request.scope.get("state", {}).get("ui")
    base: dict[str, Any] = {"session": session, "nav": [], "groups": [], "active": ctx.pop("active", "")}
    if session is not None:
        svc = scoped(request)
        base["nav"] = [e for e in NAV if e.visible(svc, session)]
        base["groups"] = groups(svc, session)
        base["can_run"] = session.role in ("run", "admin")
    html = env().get_template(template).render(**base, **ctx)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, status: int, message: str) -> Response:
    if (request.url.path.endswith(".json") or request.headers.get("hx-request")
            or "application/json" in request.headers.get("accept", "")):
        return Response(message, status_code=status, media_type="text/plain")
    try:
        return render(request, "error.html", status, title=f"{status}", message=message)
    except Exception:  # noqa: BLE001 - the error page itself failed: plain text
        log.exception("error page failed")
        return Response(message, status_code=status, media_type="text/plain")


async def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OrchestratorError)
    status = 404 if isinstance(exc, NotFound) else exc.http_status
    message = exc.message if not exc.hint else f"{exc.message} ({exc.hint})"
    return error_page(request, status, message)


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_page(request, 500, "internal error; see the server log")


async def _not_found(request: Request, exc: Exception) -> Response:
    code = getattr(exc, "status_code", 404)
    return error_page(request, code, "not found" if code == 404 else str(getattr(exc, "detail", code)))


def routes() -> list[BaseRoute]:
    import importlib

    out: list[BaseRoute] = []
    for name in ROUTE_MODULES:
        out.extend(importlib.import_module(name).routes)
    out.append(Mount("/ui/static", app=StaticFiles(directory=str(HERE / "static")), name="static"))
    return out


def create_ui(svc: Service) -> tuple[Any, Sessions]:
    """The dashboard app (its own gate in front) and its session store."""
    from starlette.exceptions import HTTPException

    inner = Starlette(routes=routes(), exception_handlers={OrchestratorError: _domain, HTTPException: _not_found,
                                                           Exception: _crash})
    inner.state.svc = svc
    inner.state.views = {}
    sessions = Sessions()
    return UiGate(inner, svc, sessions), sessions


def mount(app: Any, svc: Service) -> None:
    """Serve the dashboard under ``/ui`` of the API app (``app.state.ui_sessions`` for one-time logins)."""
    ui, sessions = create_ui(svc)
    app.state.ui_sessions = sessions
    app.router.routes.append(_UiRoute(ui))


class _UiRoute(BaseRoute):
    """Hands every ``/ui`` path (with its full path, unchanged) to the dashboard app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.path = PREFIX

    def matches(self, scope: Any) -> tuple[Any, dict[str, Any]]:
        from starlette.routing import Match

        path = scope.get("path", "")
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        from starlette.routing import NoMatchFound

        raise NoMatchFound(name, path_params)


def _has_sweeps(svc: Service, session: Session) -> bool:
    from orchestrator.control.dashboard_serving import has_sweeps

    return has_sweeps(svc)


def _has_deployments(svc: Service, session: Session) -> bool:
    from orchestrator.control.dashboard_serving import has_deployments

    return has_deployments(svc)


# the sweep and deployment pages (orchestrator.api.ui.pages_serving), linked once there is one
add_nav(NavEntry("sweeps", "Sweeps", "/ui/sweeps", _has_sweeps), "orchestrator.api.ui.pages_serving")
add_nav(NavEntry("deployments", "Deployments", "/ui/deployments", _has_deployments))

__all__ = ["NAV", "NavEntry", "add_nav", "mount", "create_ui", "render", "scoped", "session_of"]
