"""Pydantic models of the AI API v2 deployment bodies (camelCase, as on the wire).

Owns: what ``POST``/``PATCH /v2/lm/deployments`` may contain (unknown fields refused) and the
response schemas published in ``/openapi.json``. Handlers build the JSON with
:func:`deployment` / :func:`deployment_status` below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from orchestrator.api import wire
from orchestrator.api.models import Body, BulkItem, Id, Out

Ttl = Annotated[str, StringConstraints(pattern=r"^[0-9]+[mMhHdD]$", max_length=12)]
ModelRef = Annotated[str, StringConstraints(min_length=9, max_length=300)]


class DeploymentIn(Body):
    configurationId: Id | None = None
    ttl: Ttl | None = None
    model: ModelRef | None = Field(default=None, description="extension: deploy models:/NAME@ALIAS with the "
                                   "built-in model server instead of a configuration")


class DeploymentPatch(Body):
    targetStatus: Literal["STOPPED"] | None = None
    configurationId: Id | None = None


class DeploymentBulkIn(Body):
    deployments: list[BulkItem] = Field(max_length=100)  # {id, targetStatus: STOPPED|DELETED}, as for executions


class DeploymentCreated(Out):
    id: str
    message: str
    deploymentUrl: str
    status: str
    ttl: str | None = None


class DeploymentOut(Out):
    id: str
    deploymentUrl: str
    configurationId: str
    configurationName: str
    scenarioId: str
    status: str
    targetStatus: str
    createdAt: str
    modifiedAt: str


class DeploymentList(Out):
    count: int
    resources: list[DeploymentOut]


class DeploymentBulkOut(Out):
    deployments: list[dict[str, Any]]


def deployment_url(base: str, r: Mapping[str, Any]) -> str:
    """``<server>/v2/inference/deployments/<id>`` once it serves (AI Core: empty until running)."""
    return f"{base}/v2/inference/deployments/{r['id']}" if r["status"] == "RUNNING" else ""


def deployment(r: Mapping[str, Any], base: str) -> dict[str, Any]:
    """The AI API shape, shared with the CLI's local ``--json``
    (:func:`orchestrator.control.deploy.deployment_json`)."""
    from orchestrator.control.deploy import deployment_json

    return deployment_json(r, deployment_url(base, r))


def deployment_status(r: Mapping[str, Any]) -> dict[str, Any]:
    """``$select=status``: the same keys as an execution's (SAP's client raises TypeError on any other)."""
    return wire.execution_status(r)


__all__ = ["DeploymentIn", "DeploymentPatch", "DeploymentBulkIn", "deployment", "deployment_status"]
