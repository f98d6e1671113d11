"""The relay to a deployment's predictor, shared by the inference proxy and the dashboard.

Owns: sending one request to the predictor a deployment runs now and returning its answer whole
(no streaming: bounded by the predictor's own caps), or the 502/503/504 error. The target port is
read from the store for every request, so a configuration swap (the manager writes the new
predictor's port only once it is ready) switches traffic atomically; a connection refused by a
predictor that just left is retried on the port the store names now (nothing was sent, so the
retry is safe); a deployment whose manager stopped (a reboot, a kill) is woken. Callers have
checked the caller's rights; a deployment of another group is NotFound here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi.responses import Response

from orchestrator.api.responses import error_response
from orchestrator.control import deploy

RETRY_FOR = 5.0  # seconds a refused connection is retried (a swap or a restart under way)
TIMEOUT = 60.0


def client(state: Any) -> Any:
    """The HTTP client kept on ``state`` (an app's ``state``), made on first use."""
    import httpx

    found = getattr(state, "inference_client", None)
    if found is None:
        found = state.inference_client = httpx.AsyncClient(
            timeout=httpx.Timeout(TIMEOUT, connect=2.0), trust_env=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))
    return found


def port_of(svc: Any, deployment_id: str) -> tuple[int, str]:
    """The port to forward to now (0: none) and the deployment's status."""
    row = deploy.get(svc, deployment_id)
    return (int(row["port"]) if row["status"] == "RUNNING" and row["port"] else 0), row["status"]


async def relay(svc: Any, state: Any, deployment_id: str, method: str, path: str, body: bytes,
                headers: dict[str, str], query: str = "", first: tuple[int, str] | None = None) -> Response:
    """Send one request to the deployment's predictor and return its answer (or the error);
    ``first``: :func:`port_of` as the caller just read it (saves a store read)."""
    import httpx

    port, status = first or port_of(svc, deployment_id)  # NotFound for another group's deployment
    http = client(state)
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
            resp = await http.request(method, f"http://127.0.0.1:{port}/{path}", params=query or None,
                                      content=body, headers=headers)
            break
        except httpx.ConnectError:
            if not woken:  # after a reboot the store still names a port nobody listens on
                woken = True
                deploy.wake(svc)
            if time.monotonic() >= deadline:
                return error_response(502, "BAD_GATEWAY", f"the predictor of deployment {deployment_id} "
                                      "does not accept connections")
            await asyncio.sleep(0.02)
            port, status = port_of(svc, deployment_id)
        except httpx.TimeoutException:
            return error_response(504, "GATEWAY_TIMEOUT", f"the predictor of deployment {deployment_id} did "
                                  f"not answer within {TIMEOUT:g} s")
        except httpx.HTTPError as exc:
            return error_response(502, "BAD_GATEWAY", f"the predictor of deployment {deployment_id} failed: "
                                  f"{type(exc).__name__}")
    out = {k: v for k, v in resp.headers.items() if k.lower() in ("content-type", "cache-control", "retry-after")}
    return Response(resp.content, status_code=resp.status_code, headers=out)


__all__ = ["relay", "client", "port_of", "RETRY_FOR", "TIMEOUT"]
