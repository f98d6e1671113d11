"""Inference through the server: ``/v2/inference/deployments/<id>/…`` forwarded to the predictor.

Owns: the reverse proxy route of a deployment's ``deploymentUrl``. The gate has already checked
the token and the ``AI-Resource-Group`` header; a deployment of another group is 404. The request
(hop-by-hop headers dropped, the target exactly as sent) goes through
:func:`orchestrator.api.inference_relay.relay` (the store's current port, retries while a swap or
restart is under way, the 502/503 errors), the same relay the dashboard's "try it" form uses.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orchestrator.api.deps import ERRORS, scoped
from orchestrator.api.inference_relay import RETRY_FOR, TIMEOUT, port_of, relay, target_of

router = APIRouter(responses=ERRORS)
HOP = frozenset(("host", "authorization", "ai-resource-group", "connection", "keep-alive", "proxy-authorization",
                 "te", "trailer", "transfer-encoding", "upgrade", "content-length", "expect"))


def _target(request: Request, deployment_id: str, path: str) -> str:
    """What follows ``/v2/inference/deployments/<id>`` in the request as sent (still percent-encoded)."""
    raw: bytes = request.scope.get("raw_path") or b""
    prefix = f"/v2/inference/deployments/{deployment_id}".encode()
    query = (request.scope.get("query_string") or b"").decode("latin-1")
    if raw.startswith(prefix + b"/"):
        return raw[len(prefix):].decode("latin-1") + ("?" + query if query else "")
    return target_of(path, query)


@router.api_route("/v2/inference/deployments/{deployment_id}/{path:path}", response_model=None,
                  methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], include_in_schema=False)
async def forward(request: Request, deployment_id: str, path: str) -> Response:
    svc = scoped(request)
    first = port_of(svc, deployment_id)  # NotFound for another group's deployment, before the body is read
    body = await request.body()
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP]
    return await relay(svc, request.app.state, deployment_id, request.method, _target(request, deployment_id, path),
                       body, headers, first)


__all__ = ["router", "RETRY_FOR", "TIMEOUT"]
