"""Docker registry secret routes: ``/v2/admin/dockerRegistrySecrets[/{name}]`` (AI API v2).

Owns: their HTTP shape, as SAP's ``ai_core_sdk`` ``docker_registry_secrets`` client sends and
reads it — POST ``{name, data: {".dockerconfigjson": base64}}`` → 202 ``{message}``; GET → ``{count,
resources: [{name}]}``; GET one → ``{name}``; PATCH ``{data}`` (``merge-patch+json``) → 202 ``{id,
message}``; DELETE → 202 ``{id, message}``. Tenant-wide as in AI Core (no resource group); admin role
(the gate). Values are never returned. Checks live in :mod:`orchestrator.control.registry_secrets`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field, StringConstraints

from orchestrator.api import models as m
from orchestrator.api import wire
from orchestrator.api.deps import ERRORS, PAGING, query
from orchestrator.api.responses import json_response
from orchestrator.control import registry_secrets as rs

router = APIRouter(responses=ERRORS)
PATH = "/v2/admin/dockerRegistrySecrets"
Value = Annotated[str, StringConstraints(max_length=rs.MAX_BYTES * 2)]


class RegistrySecretIn(m.Body):
    name: Annotated[str, StringConstraints(max_length=63)]
    data: dict[str, Value] = Field(max_length=4)


class RegistrySecretPatch(m.Body):
    data: dict[str, Value] = Field(max_length=4)


def _store(request: Request) -> object:
    return request.app.state.svc.store


@router.post(PATH, status_code=202, response_model=None, responses={202: {"model": m.Message}})
async def create_registry_secret(request: Request, payload: RegistrySecretIn) -> Response:
    rs.create(_store(request), payload.name, payload.data)
    return json_response({"message": "Secret has been created"}, 202)


@router.get(PATH, response_model=None, openapi_extra=query(*PAGING))
async def list_registry_secrets(request: Request) -> Response:
    top, skip = wire.paging(request.query_params)
    items = [{"name": r["name"]} for r in rs.names(_store(request))]
    return json_response(wire.listing(items[skip:skip + top], len(items)))


@router.get(PATH + "/{name}", response_model=None)
async def get_registry_secret(request: Request, name: str) -> Response:
    return json_response(rs.get(_store(request), name))


@router.patch(PATH + "/{name}", status_code=202, response_model=None, responses={202: {"model": m.IdMessage}})
async def modify_registry_secret(request: Request, name: str, payload: RegistrySecretPatch) -> Response:
    rs.modify(_store(request), name, payload.data)
    return json_response({"id": name, "message": "Secret has been modified"}, 202)


@router.delete(PATH + "/{name}", status_code=202, response_model=None, responses={202: {"model": m.IdMessage}})
async def delete_registry_secret(request: Request, name: str) -> Response:
    rs.delete(_store(request), name)
    return json_response({"id": name, "message": "Secret has been deleted"}, 202)
