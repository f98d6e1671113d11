"""Pydantic models of the admin endpoints: resource groups, object store secrets, secrets, tokens.

Owns: the request bodies of ``/v2/admin/resourceGroups``, ``/v2/admin/objectStoreSecrets``,
``/v2/admin/secrets`` (unknown fields refused; secret names as AI Core allows them, values capped)
and ``/oauth/token``'s answer, with their response schemas in ``/openapi.json``. Re-exported by
:mod:`orchestrator.api.models`. Must not import: routes, app, control.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from orchestrator.api.models_base import Body, Label, LabelOut, Out


class ResourceGroupIn(Body):
    resourceGroupId: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9.-]{1,62}[a-zA-Z0-9]$")]
    labels: list[Label] | None = Field(default=None, max_length=100)


class ResourceGroupPatch(Body):
    resourceGroupId: str | None = None
    labels: list[Label] | None = Field(default=None, max_length=100)


class ResourceGroupOut(Out):
    resourceGroupId: str
    tenantId: str | None = None
    zoneId: str | None = None
    labels: list[LabelOut] = []
    status: str | None = None
    createdAt: str | None = None


class ResourceGroupList(Out):
    count: int
    resources: list[ResourceGroupOut]


SecretName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]


class ObjectStoreIn(Body):
    name: SecretName
    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    data: dict[str, Annotated[str, StringConstraints(max_length=65536)]] | None = None
    bucket: str | None = None
    endpoint: str | None = None
    region: str | None = None
    pathPrefix: str | None = None
    verifyssl: str | None = None
    usehttps: str | None = None


class ObjectStoreOut(Out):
    name: str
    metadata: dict[str, str]


class ObjectStoreList(Out):
    count: int
    resources: list[ObjectStoreOut]


class SecretIn(Body):
    name: SecretName
    data: dict[str, Annotated[str, StringConstraints(max_length=65536)]] = Field(max_length=100)


class SecretPatch(Body):
    data: dict[str, Annotated[str, StringConstraints(max_length=65536)]] = Field(max_length=100)


class SecretOut(Out):
    name: str
    createdAt: str | None = None


class SecretList(Out):
    count: int
    resources: list[SecretOut]


class TokenOut(Out):
    access_token: str
    token_type: str
    expires_in: int
    scope: str | None = None

