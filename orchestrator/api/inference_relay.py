"""The relay to a deployment's predictor, shared by the inference proxy and the dashboard.

Owns: sending one request to the predictor a deployment runs now and returning its answer whole
(no streaming: bounded by the predictor's own caps and :data:`orchestrator.api.upstream.MAX_BODY`),
or the 502/503 error. The target port is read from the store for every request, so a
configuration swap (the manager writes the new predictor's port only once it is ready) switches
traffic atomically; a connection refused by a predictor that just left is retried on the port the
store names now (nothing was sent, so the retry is safe); a deployment whose manager stopped (a
reboot, a kill) is woken. The exchange itself is :mod:`orchestrator.api.upstream` (a lean
keep-alive client: httpx cost several ms per request here). Callers have checked the caller's
rights; a deployment of another group is NotFound here.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

from fastapi.responses import Response

from orchestrator.api.responses import error_response
from orchestrator.api.upstream import Upstream, UpstreamError
from orchestrator.control import deploy

RETRY_FOR = 5.0  # seconds a refused connection is retried (a swap or a restart under way)
TIMEOUT = 60.0
PASSED = ("content-type", "cache-control", "retry-after", "www-authenticate")


def client(state: Any) -> Upstream:
    """The upstream client kept on ``state`` (an app's ``state``), made on first use."""
    found = getattr(state, "inference_upstream", None)
    if found is None:
        found = state.inference_upstream = Upstream()
    return found


def port_of(svc: Any, deployment_id: str) -> tuple[int, str]:
    """The port to forward to now (0: none) and the deployment's status."""
    row = deploy.get(svc, deployment_id)
    return (int(row["port"]) if row["status"] == "RUNNING" and row["port"] else 0), row["status"]


def target_of(path: str, query: str = "") -> str:
    """A request target from a decoded relative ``path`` and a raw query string."""
    target = "/" + urllib.parse.quote(path.lstrip("/"), safe="/:@!$&'()*+,;=-._~")
    return target + ("?" + urllib.parse.quote(query, safe="/:@!$&'()*+,;=-._~?%") if query else "")


async def relay(svc: Any, state: Any, deployment_id: str, method: str, target: str, body: bytes,
                headers: Iterable[tuple[str, str]], first: tuple[int, str] | None = None) -> Response:
    """Send one request (``target``: path and query, starting with ``/``) to the deployment's
    predictor and return its answer (or the error); ``first``: :func:`port_of` as the caller just
    read it (saves a store read)."""
    port, status = first or port_of(svc, deployment_id)  # NotFound for another group's deployment
    upstream = client(state)
    pairs = list(headers)
    woken = not port
    if not port:
        deploy.wake(svc)  # its manager may have stopped (a reboot, a kill): it starts the predictor again
    deadline = time.monotonic() + RETRY_FOR
    while True:
        if not port:
            # PENDING may be a restart under way: wait for it a little; anything else answers now
            if status != "PENDING" or time.monotonic() >= deadline:
                return error_response(503, "DEPLOYMENT_NOT_RUNNING",
                                      f"deployment {deployment_id} is {status}, not RUNNING; see its status and logs")
            await asyncio.sleep(0.05)
            port, status = port_of(svc, deployment_id)
            continue
        try:
            code, answer_headers, payload = await upstream.request(port, method, target, pairs, body, TIMEOUT)
            break
        except UpstreamError as exc:
            if not exc.connect:
                return error_response(502, "BAD_GATEWAY", f"the predictor of deployment {deployment_id} failed: {exc}")
            if not woken:  # after a reboot the store still names a port nobody listens on
                woken = True
                deploy.wake(svc)
            if time.monotonic() >= deadline:
                return error_response(502, "BAD_GATEWAY", f"the predictor of deployment {deployment_id} "
                                      "does not accept connections")
            await asyncio.sleep(0.02)
            port, status = port_of(svc, deployment_id)
    out = {k: v for k, v in answer_headers if k in PASSED}
    return Response(payload, status_code=code, headers=out)


__all__ = ["relay", "client", "port_of", "target_of", "RETRY_FOR", "TIMEOUT"]
