"""Admin routes: resource groups, object store secrets, generic secrets, and ``POST /oauth/token``.

Owns: the HTTP shape of ``/v2/admin/*`` (admin role, checked by the gate) and the OAuth2
client-credentials exchange that lets unmodified ``AICORE_CLIENT_ID``/``AICORE_CLIENT_SECRET``
configurations work: the client secret is an orchestrator API token; the answer is a fresh
access token with the same role and scope. Secret values are never returned.
"""

from __future__ import annotations

import base64
import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orchestrator.api import models as m
from orchestrator.api import wire
from orchestrator.api.deps import ERRORS, PAGING, query
from orchestrator.api.responses import error_response, json_response
from orchestrator.control import resources, tokens
from orchestrator.control.service import Service

router = APIRouter(responses=ERRORS)
TENANT = "*tenant*"  # the scope of secrets created with AI-Tenant-Scope: true


def _svc(request: Request) -> Service:
    svc: Service = request.app.state.svc
    return svc


def _group(request: Request, *, tenant_scope: bool = False) -> Service:
    """The service in the group named by AI-Resource-Group (or the tenant scope for secrets)."""
    svc = _svc(request)
    if tenant_scope and request.headers.get("ai-tenant-scope", "").lower() == "true":
        return svc.scoped(TENANT)
    rg = request.headers.get("ai-resource-group", "")
    if not rg:
        raise wire.BadRequest("header AI-Resource-Group is required")
    svc.store.get_resource_group(rg)
    return svc.scoped(rg)


# ---------------------------------------------------------------------- resource groups
@router.post("/v2/admin/resourceGroups", status_code=202, response_model=None,
             responses={202: {"model": m.ResourceGroupOut}})
async def create_resource_group(request: Request, payload: m.ResourceGroupIn) -> Response:
    row = _svc(request).store.create_resource_group(payload.resourceGroupId,
                                                    [(x.key, x.value) for x in payload.labels or []])
    return json_response(wire.resource_group(row), 202)


@router.get("/v2/admin/resourceGroups", response_model=None, responses={200: {"model": m.ResourceGroupList}},
            openapi_extra=query(*PAGING))
async def list_resource_groups(request: Request) -> Response:
    rows = [r for r in _svc(request).store.list_resource_groups() if r["id"] != TENANT]
    top, skip = wire.paging(request.query_params)
    items = [wire.resource_group(r) for r in rows]
    return json_response(wire.listing(items[skip:skip + top], len(items)))


@router.get("/v2/admin/resourceGroups/{rg}", response_model=None, responses={200: {"model": m.ResourceGroupOut}})
async def get_resource_group(request: Request, rg: str) -> Response:
    return json_response(wire.resource_group(_svc(request).store.get_resource_group(rg)))


@router.patch("/v2/admin/resourceGroups/{rg}", status_code=202, response_model=None,
              responses={202: {"model": m.IdMessage}})
async def modify_resource_group(request: Request, rg: str, payload: m.ResourceGroupPatch) -> Response:
    if payload.resourceGroupId not in (None, rg):
        raise wire.BadRequest("resourceGroupId cannot be changed")
    _svc(request).store.set_resource_group_labels(rg, [(x.key, x.value) for x in payload.labels or []])
    return json_response({"id": rg, "message": "Resource group modified"}, 202)


@router.delete("/v2/admin/resourceGroups/{rg}", status_code=202, response_model=None,
               responses={202: {"model": m.IdMessage}})
async def delete_resource_group(request: Request, rg: str) -> Response:
    _svc(request).store.delete_resource_group(rg)
    return json_response({"id": rg, "message": "Resource group deleted"}, 202)


# ---------------------------------------------------------------------- object store secrets
def _object_store(row: dict[str, object]) -> dict[str, object]:
    import json

    return {"name": row["name"], "metadata": json.loads(str(row["metadata"]))}


@router.post("/v2/admin/objectStoreSecrets", status_code=202, response_model=None,
             responses={202: {"model": m.Message}})
async def create_object_store(request: Request, payload: m.ObjectStoreIn) -> Response:
    resources.put_object_store(_group(request), payload.model_dump(), create=True)
    return json_response({"message": "Secret has been created"}, 202)


@router.get("/v2/admin/objectStoreSecrets", response_model=None, responses={200: {"model": m.ObjectStoreList}},
            openapi_extra=query(*PAGING))
async def list_object_stores(request: Request) -> Response:
    svc = _group(request)
    top, skip = wire.paging(request.query_params)
    items = [_object_store(r) for r in svc.store.list_object_stores(svc.rg)]
    return json_response(wire.listing(items[skip:skip + top], len(items)))


@router.get("/v2/admin/objectStoreSecrets/{name}", response_model=None, responses={200: {"model": m.ObjectStoreOut}})
async def get_object_store(request: Request, name: str) -> Response:
    svc = _group(request)
    return json_response(_object_store(svc.store.get_object_store(svc.rg, name)))


@router.patch("/v2/admin/objectStoreSecrets/{name}", status_code=202, response_model=None,
              responses={202: {"model": m.IdMessage}})
async def modify_object_store(request: Request, name: str, payload: m.ObjectStoreIn) -> Response:
    if payload.name != name:
        raise wire.BadRequest("the secret name in the body must match the path")
    resources.put_object_store(_group(request), payload.model_dump(), create=False)
    return json_response({"id": name, "message": "Secret has been modified"}, 202)


@router.delete("/v2/admin/objectStoreSecrets/{name}", status_code=202, response_model=None,
               responses={202: {"model": m.IdMessage}})
async def delete_object_store(request: Request, name: str) -> Response:
    resources.delete_object_store(_group(request), name)
    return json_response({"id": name, "message": "Secret has been deleted"}, 202)


# ---------------------------------------------------------------------- generic secrets
@router.post("/v2/admin/secrets", response_model=None, responses={200: {"model": m.Message}})
async def create_secret(request: Request, payload: m.SecretIn) -> Response:
    svc = _group(request, tenant_scope=True)
    svc.store.put_secret(svc.rg, payload.name, resources.check_secret_data(payload.data), create=True)
    return json_response({"message": "Secret has been created"})


@router.get("/v2/admin/secrets", response_model=None, responses={200: {"model": m.SecretList}},
            openapi_extra=query(*PAGING))
async def list_secrets(request: Request) -> Response:
    svc = _group(request, tenant_scope=True)
    top, skip = wire.paging(request.query_params)
    items = [{"name": r["name"], "createdAt": r["created_at"]} for r in svc.store.list_secrets(svc.rg)]
    return json_response(wire.listing(items[skip:skip + top], len(items)))


@router.patch("/v2/admin/secrets/{name}", response_model=None, responses={200: {"model": m.Message}})
async def modify_secret(request: Request, name: str, payload: m.SecretPatch) -> Response:
    svc = _group(request, tenant_scope=True)
    svc.store.put_secret(svc.rg, name, resources.check_secret_data(payload.data), create=False)
    return json_response({"message": "Secret has been modified"})


@router.delete("/v2/admin/secrets/{name}", response_model=None, responses={200: {"model": m.Message}})
async def delete_secret(request: Request, name: str) -> Response:
    svc = _group(request, tenant_scope=True)
    svc.store.delete_secret(svc.rg, name)
    return json_response({"message": "Secret has been deleted"})


# ---------------------------------------------------------------------- OAuth2 client credentials
@router.post("/oauth/token", response_model=None, responses={200: {"model": m.TokenOut}})
async def oauth_token(request: Request) -> Response:
    """``grant_type=client_credentials``; the client secret (form or HTTP Basic) is an API token."""
    challenge = {"WWW-Authenticate": 'Basic realm="orchestrator"'}
    raw = await request.body()
    form = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), max_num_fields=10)) if raw else {}
    form.update({k: v for k, v in request.query_params.items() if k in ("grant_type",) and k not in form})
    secret = form.get("client_secret", "")
    auth = request.headers.get("authorization", "")
    if not secret and auth.lower().startswith("basic "):
        try:
            _, _, secret = base64.b64decode(auth[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            secret = ""
    if form.get("grant_type", "client_credentials") != "client_credentials":
        return json_response({"error": "unsupported_grant_type",
                              "error_description": "only client_credentials is supported"}, 400)
    parent = tokens.lookup(_svc(request).store, secret) if secret else None
    if parent is None or parent["kind"] != "api":
        return error_response(401, "UNAUTHORIZED", "invalid client credentials", challenge)
    access, ttl = tokens.mint_access(_svc(request).store, parent)
    return json_response({"access_token": access, "token_type": "bearer", "expires_in": ttl,
                          "scope": parent["role"]})


__all__ = ["router"]
