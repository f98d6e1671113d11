"""Pydantic models of AI API v2 request and response bodies (camelCase, as on the wire).

Owns: what a request body may contain (unknown fields are refused: ``extra="forbid"``) and the
response schemas published in ``/openapi.json`` (which schemathesis checks our answers against).
Handlers return plain JSON built by :mod:`orchestrator.api.wire`; these models describe it.
The shared vocabulary (``Id``, ``Body``, ``Out``, labels, errors) is :mod:`orchestrator.api.models_base`
and the admin bodies are :mod:`orchestrator.api.models_admin`; both are re-exported here, so a
route needs only ``models as m``. Must not import: routes, app, control.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from orchestrator.api.models_admin import (  # re-exported
    ObjectStoreIn,
    ObjectStoreList,
    ObjectStoreOut,
    ResourceGroupIn,
    ResourceGroupList,
    ResourceGroupOut,
    ResourceGroupPatch,
    SecretIn,
    SecretList,
    SecretName,
    SecretOut,
    SecretPatch,
    TokenOut,
)
from orchestrator.api.models_base import (  # re-exported
    Body,
    ErrorDetail,
    ErrorInner,
    ErrorOut,
    Id,
    IdMessage,
    Label,
    LabelOut,
    Message,
    Name,
    Out,
    Text,
)

Kind = Literal["model", "dataset", "resultset", "other"]


# ---------------------------------------------------------------------- scenarios / executables
class ScenarioOut(Out):
    id: str
    name: str
    description: str | None = None
    labels: list[LabelOut] = []
    createdAt: str
    modifiedAt: str


class ScenarioList(Out):
    count: int
    resources: list[ScenarioOut]


class VersionOut(Out):
    id: str
    scenarioId: str
    description: str | None = None
    createdAt: str
    modifiedAt: str


class VersionList(Out):
    count: int
    resources: list[VersionOut]


class ParameterOut(Out):
    name: str
    type: Literal["string"]
    default: str | None = None
    description: str | None = None


class ArtifactDeclOut(Out):
    name: str
    kind: str | None = None
    description: str | None = None


class ExecutableOut(Out):
    id: str
    scenarioId: str
    versionId: str
    name: str
    description: str | None = None
    deployable: bool
    labels: list[LabelOut] = []
    parameters: list[ParameterOut] = []
    inputArtifacts: list[ArtifactDeclOut] = []
    outputArtifacts: list[ArtifactDeclOut] = []
    createdAt: str
    modifiedAt: str


class ExecutableList(Out):
    count: int
    resources: list[ExecutableOut]


# ---------------------------------------------------------------------- artifacts
class ArtifactIn(Body):
    name: Name
    kind: Kind
    url: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    scenarioId: Id
    description: Text | None = None
    labels: list[Label] | None = Field(default=None, max_length=100)


class ArtifactCreated(Out):
    id: str
    message: str
    url: str


class ArtifactOut(Out):
    id: str
    name: str
    kind: str
    url: str
    scenarioId: str
    description: str | None = None
    labels: list[LabelOut] = []
    createdAt: str
    modifiedAt: str
    executionId: str | None = None
    configurationId: str | None = None


class ArtifactList(Out):
    count: int
    resources: list[ArtifactOut]


# ---------------------------------------------------------------------- configurations
class ParameterBinding(Body):
    key: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    value: Annotated[str, StringConstraints(max_length=5000)]


class ArtifactBinding(Body):
    key: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    # An artifact id, or a registered model: models:/NAME@ALIAS or models:/NAME/VERSION (resolved per execution)
    artifactId: Id | Annotated[str, StringConstraints(pattern=r"^models:/[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
                                                      r"(@[A-Za-z_][A-Za-z0-9_-]{0,63}|/[1-9][0-9]{0,9})$")]


class ConfigurationIn(Body):
    name: Name
    scenarioId: Id
    executableId: Id
    parameterBindings: list[ParameterBinding] | None = Field(default=None, max_length=1000)
    inputArtifactBindings: list[ArtifactBinding] | None = Field(default=None, max_length=1000)


class ConfigurationOut(Out):
    id: str
    name: str
    scenarioId: str
    executableId: str
    parameterBindings: list[dict[str, str]] = []
    inputArtifactBindings: list[dict[str, str]] = []
    createdAt: str


class ConfigurationList(Out):
    count: int
    resources: list[ConfigurationOut]


# ---------------------------------------------------------------------- executions
class ExecutionIn(Body):
    configurationId: Id


class ExecutionCreated(Out):
    id: str
    message: str
    status: str


class ExecutionOut(Out):
    id: str
    configurationId: str
    configurationName: str | None = None
    scenarioId: str
    executableId: str | None = None
    status: str
    targetStatus: str
    statusMessage: str | None = None
    createdAt: str
    modifiedAt: str
    submissionTime: str | None = None
    startTime: str | None = None
    completionTime: str | None = None
    executionScheduleId: str | None = None
    outputArtifacts: list[ArtifactOut] = []


class ExecutionStatusOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    configurationId: str
    status: str
    createdAt: str
    modifiedAt: str
    statusDetails: dict[str, object] | None = None


class ExecutionList(Out):
    count: int
    resources: list[ExecutionOut]


class ExecutionPatch(Body):
    targetStatus: Literal["STOPPED"]


class BulkItem(Body):
    id: Id
    targetStatus: Literal["STOPPED", "DELETED"]


class BulkIn(Body):
    executions: list[BulkItem] = Field(max_length=100)


class BulkOut(Out):
    executions: list[dict[str, object]]


class LogLine(Out):
    msg: str
    timestamp: str


class LogResult(Out):
    result: list[LogLine]


class LogsOut(Out):
    data: LogResult


# ---------------------------------------------------------------------- schedules
class ScheduleIn(Body):
    name: Name
    cron: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    configurationId: Id
    start: str | None = None
    end: str | None = None
    status: Literal["ACTIVE", "INACTIVE"] | None = None


class SchedulePatch(Body):
    cron: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    start: str | None = None
    end: str | None = None
    configurationId: Id | None = None
    status: Literal["ACTIVE", "INACTIVE"] | None = None


class ScheduleOut(Out):
    id: str
    name: str
    cron: str
    configurationId: str
    status: str
    start: str | None = None
    end: str | None = None
    createdAt: str
    modifiedAt: str


class ScheduleList(Out):
    count: int
    resources: list[ScheduleOut]


# ---------------------------------------------------------------------- metrics
MetricName = Annotated[str, StringConstraints(pattern=r"^[\w-]{1,64}$")]


class MetricLabel(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    value: Annotated[str, StringConstraints(max_length=256)]


class MetricIn(Body):
    name: MetricName
    value: float = Field(allow_inf_nan=False)
    timestamp: str | None = None
    step: Annotated[int, Field(ge=0, le=2**53)] | None = None
    labels: list[MetricLabel] | None = Field(default=None, max_length=20)


class NameValue(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    value: Annotated[str, StringConstraints(max_length=5000)]


class MetricsPatch(Body):
    executionId: Id
    metrics: list[MetricIn] | None = None  # at most wire.MAX_METRICS, else 413 (checked by the route)
    tags: list[NameValue] | None = Field(default=None, max_length=100)
    customInfo: list[NameValue] | None = Field(default=None, max_length=100)


class MetricsList(Out):
    count: int
    resources: list[dict[str, object]]


# ---------------------------------------------------------------------- sweep trials
class SweepTrialOut(Out):
    trial: int
    executionId: str
    status: str
    parameters: dict[str, float | int | str]
    objective: float | None = None
    reports: int
    statusMessage: str = ""
    startedAt: str | None = Field(None, description="ISO 8601 UTC, as every timestamp of the API")
    finishedAt: str | None = Field(None, description="ISO 8601 UTC, as every timestamp of the API")
    duration: float | None = Field(None, description="seconds")
    best: bool = False
    interrupted: bool = False


class SweepTrialList(Out):
    count: int
    resources: list[SweepTrialOut]
