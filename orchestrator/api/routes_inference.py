"""Inference through the server: ``/v2/inference/deployments/<id>/…`` forwarded to the predictor.

Owns: the reverse proxy of a deployment's ``deploymentUrl`` (no streaming: the answer is read
whole, bounded by the predictor's own caps). The gate has already checked the token and the
``AI-Resource-Group`` header; a deployment of another group is 404. The target port is read from
the store for every request (the exchange itself is :mod:`orchestrator.api.upstream`), so a configuration swap (the manager writes the new predictor's port
only once it is ready) switches traffic atomically; a connection refused by a predictor that just
left is retried on the port the store names now (nothing was sent, so the retry is safe).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orchestrator.api.deps import ERRORS, scoped
from orchestrator.api.responses import error_response
from orchestrator.api.upstream import Upstream, UpstreamError
from orchestrator.control import deploy

router = APIRouter(responses=ERRORS)
HOP = frozenset(("host", "authorization", "ai-resource-group", "connection", "keep-alive", "proxy-authorization",
                 "te", "trailer", "transfer-encoding", "upgrade", "content-length", "expect"))
PASSED = ("content-type", "cache-control", "retry-after", "www-authenticate")
RETRY_FOR = 5.0  # seconds a refused connection is retried (a swap or a restart under way)
TIMEOUT = 60.0


def _upstream(request: Request) -> Upstream:
    client = getattr(request.app.state, "inference_upstream", None)
    if client is None:
        client = request.app.state.inference_upstream = Upstream()
    return client


def _target(request: Request, deployment_id: str, path: str) -> str:
    """What follows ``/v2/inference/deployments/<id>`` in the request as sent (still percent-encoded)."""
    raw: bytes = request.scope.get("raw_path") or b""
    prefix = f"/v2/inference/deployments/{deployment_id}".encode()
    if raw.startswith(prefix + b"/"):
        target = raw[len(prefix):].decode("latin-1")
    else:
        target = "/" + urllib.parse.quote(path, safe="/:@!$&'()*+,;=-._~")
    query = request.scope.get("query_string") or b""
    return target + ("?" + query.decode("latin-1") if query else "")


def _port(svc: Any, deployment_id: str) -> tuple[int, str]:
    """The port to forward to now (0: none) and the deployment's status."""
    row = deploy.get(svc, deployment_id)
    return (int(row["port"]) if row["status"] == "RUNNING" and row["port"] else 0), row["status"]


@router.api_route("/v2/inference/deployments/{deployment_id}/{path:path}", response_model=None,
                  methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], include_in_schema=False)
async def forward(request: Request, deployment_id: str, path: str) -> Response:
    svc = scoped(request)
    port, status = _port(svc, deployment_id)  # NotFound for another group's deployment
    body = await request.body()
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP]
    target = _target(request, deployment_id, path)
    upstream = _upstream(request)
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
            port, status = _port(svc, deployment_id)
            continue
        try:
            code, answer_headers, payload = await upstream.request(port, request.method, target, headers, body,
                                                                   TIMEOUT)
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
            port, status = _port(svc, deployment_id)
    out = {k: v for k, v in answer_headers if k in PASSED}
    return Response(payload, status_code=code, headers=out)


__all__ = ["router"]
