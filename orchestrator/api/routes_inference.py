"""Inference through the server: ``/v2/inference/deployments/<id>/…`` forwarded to the predictor.

Owns: the reverse proxy of a deployment's ``deploymentUrl`` (no streaming: the answer is read
whole, bounded by the predictor's own caps). The gate has already checked the token and the
``AI-Resource-Group`` header; a deployment of another group is 404. The target port is read from
the store for every request, so a configuration swap (the manager writes the new predictor's port
only once it is ready) switches traffic atomically; a connection refused by a predictor that just
left is retried on the port the store names now (nothing was sent, so the retry is safe).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orchestrator.api.deps import ERRORS, scoped
from orchestrator.api.responses import error_response
from orchestrator.control import deploy

router = APIRouter(responses=ERRORS)
HOP = frozenset(("host", "authorization", "ai-resource-group", "connection", "keep-alive", "proxy-authorization",
                 "te", "trailer", "transfer-encoding", "upgrade", "content-length", "accept-encoding"))
RETRY_FOR = 5.0  # seconds a refused connection is retried (a swap or a restart under way)
TIMEOUT = 60.0


def _client(request: Request) -> Any:
    import httpx

    client = getattr(request.app.state, "inference_client", None)
    if client is None:
        client = request.app.state.inference_client = httpx.AsyncClient(
            timeout=httpx.Timeout(TIMEOUT, connect=2.0), trust_env=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))
    return client


def _port(svc: Any, deployment_id: str) -> tuple[int, str]:
    """The port to forward to now (0: none) and the deployment's status."""
    row = deploy.get(svc, deployment_id)
    return (int(row["port"]) if row["status"] == "RUNNING" and row["port"] else 0), row["status"]


@router.api_route("/v2/inference/deployments/{deployment_id}/{path:path}", response_model=None,
                  methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], include_in_schema=False)
async def forward(request: Request, deployment_id: str, path: str) -> Response:
    import httpx

    svc = scoped(request)
    port, status = _port(svc, deployment_id)  # NotFound for another group's deployment
    body = await request.body()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    client = _client(request)
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
            resp = await client.request(request.method, f"http://127.0.0.1:{port}/{path}",
                                        params=request.url.query or None, content=body, headers=headers)
            break
        except httpx.ConnectError:
            if not woken:  # after a reboot the store still names a port nobody listens on
                woken = True
                deploy.wake(svc)
            if time.monotonic() >= deadline:
                return error_response(502, "BAD_GATEWAY", f"the predictor of deployment {deployment_id} "
                                      "does not accept connections")
            await asyncio.sleep(0.02)
            port, status = _port(svc, deployment_id)
        except httpx.TimeoutException:
            return error_response(504, "GATEWAY_TIMEOUT", f"the predictor of deployment {deployment_id} did "
                                  f"not answer within {TIMEOUT:g} s")
        except httpx.HTTPError as exc:
            return error_response(502, "BAD_GATEWAY", f"the predictor of deployment {deployment_id} failed: "
                                  f"{type(exc).__name__}")
    out = {k: v for k, v in resp.headers.items() if k.lower() in ("content-type", "cache-control", "retry-after")}
    return Response(resp.content, status_code=resp.status_code, headers=out)


__all__ = ["router"]
