"""The two response builders every route uses: a JSON body and AI Core's error body.

Owns: :func:`json_response` and :func:`error_response`. Sits below the routes and below
:mod:`orchestrator.api.app` (which wires the routes), so no route imports the app module.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi.responses import Response

from orchestrator.api import wire


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``obj`` encoded as the wire encodes it, with ``application/json``."""
    return Response(wire.dumps(obj), status_code=status, media_type="application/json", headers=headers)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """AI Core's error shape ``{"error": {"code", "message", "requestId"}}`` with ``status``."""
    return json_response(wire.error_body(code, message, request_id=secrets.token_hex(8)), status, headers)
