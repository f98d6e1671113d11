"""Pydantic models of the experiment extension endpoints: ``/v2/lm/models`` and ``/v2/lm/compare``.

Owns: their request bodies (unknown fields refused) and the response schemas published in
``/openapi.json`` (camelCase, AI API style). Handlers return plain JSON; these describe it.
Must not import: routes, app, control (a sibling of :mod:`orchestrator.api.models`; builds on
:mod:`orchestrator.api.models_base`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from orchestrator.api.models_base import Body, Id, Out, Text

ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]


class Tag(Body):
    key: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    value: Annotated[str, StringConstraints(max_length=5000)]


class VersionIn(Body):
    """Register a version: ``executionId`` (with ``output`` when it has several models) or ``artifactId``."""

    executionId: Id | None = None
    output: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    artifactId: Id | None = None
    description: Text = ""
    tags: list[Tag] = Field(default_factory=list, max_length=100)


class VersionPatch(Body):
    """Set the description and/or tags of a version (a tag with an empty value is removed)."""

    description: Text | None = None
    tags: list[Tag] | None = Field(default=None, max_length=100)


class AliasIn(Body):
    version: Annotated[int, Field(ge=1)]
    expectedVersion: Annotated[int, Field(ge=1)] | None = None


class TagOut(Out):
    key: str
    value: str


class ModelVersionOut(Out):
    model: str
    version: int
    artifactId: str
    sha256: str
    executionId: str
    description: str
    tags: list[TagOut]
    aliases: list[str]
    createdAt: str
    modifiedAt: str
    lineage: dict[str, Any] | None = None


class ModelVersionList(Out):
    count: int
    resources: list[ModelVersionOut]


class AliasOut(Out):
    alias: str
    version: int


class AliasList(Out):
    count: int
    resources: list[AliasOut]


class AliasMoved(Out):
    model: str
    alias: str
    version: int | None = None
    previousVersion: int | None = None
    message: str


class RegisteredModelOut(Out):
    name: str
    description: str
    latestVersion: int | None = None
    versionCount: int
    aliases: list[AliasOut]
    createdAt: str
    modifiedAt: str
    versions: list[ModelVersionOut] | None = None


class RegisteredModelList(Out):
    count: int
    resources: list[RegisteredModelOut]


class MetricSummaryOut(Out):
    last: float
    lastStep: int | None = None
    min: float
    minStep: int | None = None
    max: float
    maxStep: int | None = None
    count: int
    goal: str | None = None
    best: float | None = None
    bestStep: int | None = None


class CompareRowOut(Out):
    id: str
    status: str
    scenarioId: str
    executableId: str
    createdAt: str
    startTime: str | None = None
    completionTime: str | None = None
    duration: float | None = None
    parameters: dict[str, str | None]
    metrics: dict[str, MetricSummaryOut]
    best: bool


class CompareSortOut(Out):
    metric: str
    goal: str


class CompareOut(Out):
    count: int
    parameters: list[str]
    differingParameters: list[str]
    metrics: list[str]
    goals: dict[str, str]
    sort: CompareSortOut | None = None
    bestExecutionId: str | None = None
    resources: list[CompareRowOut]
