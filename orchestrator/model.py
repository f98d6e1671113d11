"""Frozen dataclasses of the object model, the Status enum and its transition table.

Owns: the vocabulary shared by every layer (AI API names). Must not import anything from the
package except :mod:`orchestrator.errors`; raw YAML dicts never reach this module's users.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from orchestrator.errors import IllegalTransition

ARTIFACT_KINDS = ("model", "dataset", "resultset", "other")


class Status(str, enum.Enum):
    """Execution status as on the AI API v2 wire."""

    UNKNOWN = "UNKNOWN"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    DEAD = "DEAD"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.COMPLETED, Status.DEAD, Status.STOPPED})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.UNKNOWN: frozenset({Status.PENDING, Status.DEAD, Status.STOPPED}),
    Status.PENDING: frozenset({Status.RUNNING, Status.DEAD, Status.STOPPING, Status.STOPPED}),
    Status.RUNNING: frozenset({Status.COMPLETED, Status.DEAD, Status.STOPPING}),
    Status.STOPPING: frozenset({Status.STOPPED, Status.DEAD}),
    Status.COMPLETED: frozenset(),
    Status.DEAD: frozenset(),
    Status.STOPPED: frozenset(),
}


def check_transition(old: Status, new: Status) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is allowed."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"status {old.value} cannot change to {new.value}")


class StepState(str, enum.Enum):
    """State of one node of an execution's graph (Argo node phases, plus cache hits)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    OMITTED = "OMITTED"
    STOPPED = "STOPPED"
    CACHED = "CACHED"

    @property
    def done(self) -> bool:
        return self not in (StepState.PENDING, StepState.RUNNING)

    @property
    def ok(self) -> bool:
        """Counts as satisfied for plain ``dependencies`` (Argo: Succeeded, Skipped)."""
        return self in (StepState.SUCCEEDED, StepState.SKIPPED, StepState.CACHED)


# ---------------------------------------------------------------- template (spec) objects


@dataclass(frozen=True)
class ParameterDecl:
    name: str
    default: str | None = None
    description: str = ""
    enum: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArtifactDecl:
    """An input or output artifact of a template (``inputs/outputs.artifacts[]``)."""

    name: str
    path: str = ""
    global_name: str = ""
    archive_none: bool = False
    optional: bool = False
    source: str = ""  # ``from:`` of an output of a steps/dag template
    from_expression: str = ""  # ``fromExpression:`` of an output of a steps/dag template
    raw: str | None = None  # ``raw.data``: the input artifact's content, written in the template
    mode: int | None = None  # ``mode``: file permissions of an input artifact


@dataclass(frozen=True)
class OutputParam:
    name: str
    value_from_path: str = ""
    value: str | None = None
    default: str | None = None  # valueFrom.default: used when the step did not write the file
    value_from_parameter: str = ""  # valueFrom.parameter (steps/dag templates): "{{steps.X.outputs.parameters.Y}}"
    expression: str = ""  # valueFrom.expression (expr-lang), e.g. choosing between two steps' results
    global_name: str = ""  # ``globalName``: also {{workflow.outputs.parameters.NAME}}
    supplied: bool = False  # ``valueFrom.supplied`` (a suspend template): set when it is resumed


@dataclass(frozen=True)
class ArgParam:
    name: str
    value: str


@dataclass(frozen=True)
class ArgArtifact:
    name: str
    source: str  # the ``from:`` expression, e.g. "{{tasks.prep.outputs.artifacts.data}}"
    sub_path: str = ""  # ``subPath``: a file or directory inside that artifact


@dataclass(frozen=True)
class Hook:
    """A lifecycle hook other than ``exit`` (Argo's ``hooks.NAME``): runs ``template`` (with these
    arguments) once ``expression`` is true, at most once per step or per execution."""

    name: str
    template: str
    expression: str
    parameters: tuple[ArgParam, ...] = ()
    artifacts: tuple[ArgArtifact, ...] = ()


@dataclass(frozen=True)
class SecretEnv:
    """``env[].valueFrom.secretKeyRef``: environment variable ``name`` = key ``key`` of secret ``secret``."""

    name: str
    secret: str
    key: str
    optional: bool = False


@dataclass(frozen=True)
class SecretEnvFrom:
    """``envFrom[].secretRef``: every key of secret ``secret`` as a variable, ``prefix`` prepended."""

    secret: str
    prefix: str = ""
    optional: bool = False


@dataclass(frozen=True)
class Mount:
    """A ``volumeMounts`` entry with its volume (``spec.volumes``): an ``emptyDir`` (a fresh directory
    per step, as per pod) or a generic ``secret`` (its keys as files, resolved at run time)."""

    name: str
    path: str
    kind: str  # "emptyDir" | "secret"
    secret: str = ""
    items: tuple[tuple[str, str], ...] = ()  # (key, relative path); empty = every key, named after it
    optional: bool = False
    mode: int = 0o644
    sub_path: str = ""
    read_only: bool = False


@dataclass(frozen=True)
class Container:
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    source: str | None = None  # set for Argo ``script`` templates
    # Resolved at run time from the store's secrets of the execution's resource group, never at validation.
    env_secrets: tuple[SecretEnv, ...] = ()
    env_from_secrets: tuple[SecretEnvFrom, ...] = ()
    mounts: tuple[Mount, ...] = ()  # volumeMounts (shown at their paths by the sandbox)


@dataclass(frozen=True)
class RetryStrategy:
    limit: int | None = 0  # None: no limit (Argo's ``retryStrategy: {}``), retried until it succeeds
    policy: str = "OnFailure"
    backoff_duration: float = 0.0
    backoff_factor: float = 1.0
    backoff_max: float = 0.0
    limit_text: str = ""  # a placeholder (``"{{inputs.parameters.limit}}"``) resolved at run time
    expression: str = ""  # ``retryStrategy.expression``: retried only while it is true
    backoff_cap: float = 0.0  # ``backoff.cap``: no single wait longer than this

    def delay(self, attempt: int, kind: str, elapsed: float) -> float | None:
        """Seconds before attempt ``attempt + 1`` after a ``kind`` ("failure"/"error"); None = final.

        OnFailure retries non-zero exits, OnError retries errors (could not start, killed by a
        signal nobody sent, outputs could not be saved), Always both. ``backoff.maxDuration`` caps
        the time since the first attempt started, backoff included.
        """
        if self.limit is not None and attempt > self.limit:
            return None
        if (self.policy == "OnFailure" and kind != "failure") or \
                (self.policy in ("OnError", "OnTransientError") and kind != "error"):
            return None
        wait = self.backoff_duration * (self.backoff_factor ** min(attempt - 1, 64)) if self.backoff_duration else 0.0
        if self.backoff_cap:
            wait = min(wait, self.backoff_cap)
        if self.backoff_max and elapsed + wait > self.backoff_max:
            return None
        return wait


@dataclass(frozen=True)
class Call:
    """A step (in a ``steps`` group) or a DAG task calling another template."""

    name: str
    template: str
    parameters: tuple[ArgParam, ...] = ()
    artifacts: tuple[ArgArtifact, ...] = ()
    dependencies: tuple[str, ...] = ()
    depends: str = ""
    when: str = ""
    with_items: tuple[object, ...] | None = None
    with_param: str = ""  # ``withParam``: a JSON list, known at run time
    with_sequence: tuple[tuple[str, str], ...] | None = None  # ``withSequence`` fields (count/start/end/format)
    continue_on: tuple[str, ...] = ()  # ``continueOn``: "failed", "error"
    on_exit: str = ""  # step/task-level ``onExit`` or ``hooks.exit.template``: runs after the call
    exit_args: tuple[ArgParam, ...] = ()  # ``hooks.exit.arguments.parameters``
    exit_artifacts: tuple[ArgArtifact, ...] = ()  # ``hooks.exit.arguments.artifacts``
    hooks: tuple[Hook, ...] = ()  # lifecycle hooks other than ``exit`` (run.lifecycle)


@dataclass(frozen=True)
class Template:
    name: str
    container: Container | None = None
    steps: tuple[tuple[Call, ...], ...] | None = None
    dag: tuple[Call, ...] | None = None
    input_parameters: tuple[ParameterDecl, ...] = ()
    input_artifacts: tuple[ArtifactDecl, ...] = ()
    output_parameters: tuple[OutputParam, ...] = ()
    output_artifacts: tuple[ArtifactDecl, ...] = ()
    retry: RetryStrategy | None = None
    active_deadline_seconds: float | None = None
    timeout: float | None = None
    parallelism: int | None = None
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    deadline_text: str = ""  # activeDeadlineSeconds given as a placeholder: resolved at run time
    timeout_text: str = ""  # timeout given as a placeholder: resolved at run time
    fail_fast: bool = True  # ``dag.failFast`` (default true) / a steps template's ``failFast`` (default false)
    suspend: str | None = None  # ``suspend.duration`` (a suspend template; may be a placeholder)
    mutexes: tuple[str, ...] = ()  # ``synchronization.mutex(es)``: held while the step runs
    sidecars: tuple[tuple[str, Container], ...] = ()  # started with the step, killed when it ends
    before_main: tuple[tuple[str, Container], ...] = ()  # containerSet: the others, in dependency order
    # ``memoize``: (key, maxAge as written, cache name): outputs reused for the same key (run.recorded)
    memoize: tuple[str, str, str] | None = None
    dag_target: str = ""  # ``dag.target``: task names (may be a placeholder) run with what they depend on
    daemon: str | None = None  # ``daemon: true``: its container's readinessProbe as JSON ("{}": none)

    @property
    def is_leaf(self) -> bool:
        return self.container is not None or self.suspend is not None


@dataclass(frozen=True)
class ArtifactMeta:
    """Kind / description / labels of an artifact, from ``artifacts.ai.sap.com/<name>.*``."""

    kind: str = "other"
    description: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    name: str = ""


@dataclass(frozen=True)
class WorkflowSpec:
    """One validated template file: an executable."""

    executable_id: str
    kind: str  # "WorkflowTemplate" | "ServingTemplate"
    scenario_id: str
    scenario_name: str
    scenario_description: str
    version: str
    executable_name: str
    executable_description: str
    entrypoint: str
    parameters: tuple[ParameterDecl, ...]
    templates: dict[str, Template] = field(hash=False, compare=False, default_factory=dict)
    artifact_meta: dict[str, ArtifactMeta] = field(hash=False, compare=False, default_factory=dict)
    parallelism: int | None = None
    active_deadline_seconds: float | None = None
    on_exit: str = ""
    source: str = ""
    digest: str = ""
    input_artifacts: tuple[ArtifactDecl, ...] = ()
    deadline_text: str = ""  # spec.activeDeadlineSeconds given as a placeholder (workflow parameters)
    mutexes: tuple[str, ...] = ()  # ``spec.synchronization``: held by the whole execution
    labels: tuple[tuple[str, str], ...] = ()  # metadata.labels ({{workflow.labels.X}})
    annotations: tuple[tuple[str, str], ...] = ()  # metadata.annotations ({{workflow.annotations.X}})
    output_artifacts: tuple[ArtifactDecl, ...] = ()
    doc_index: int = 0
    hooks: tuple[Hook, ...] = ()  # ``spec.hooks`` other than ``exit`` (run.lifecycle)
    exit_args: tuple[ArgParam, ...] = ()  # ``spec.hooks.exit.arguments.parameters`` (Argo: else the workflow's)
    exit_artifacts: tuple[ArgArtifact, ...] = ()  # ``spec.hooks.exit.arguments.artifacts``

    @property
    def deployable(self) -> bool:
        return self.kind == "ServingTemplate"


@dataclass(frozen=True)
class ConfigurationSpec:
    """Our ``Configuration`` kind (``apiVersion: orchestrator/v1``) or an API configuration."""

    name: str
    executable_id: str
    scenario_id: str = ""
    parameter_bindings: tuple[tuple[str, str], ...] = ()
    artifact_bindings: tuple[tuple[str, str], ...] = ()  # (key, artifactId or URL)
    source: str = ""


@dataclass(frozen=True)
class ScheduleSpec:
    """Our ``ExecutionSchedule`` kind (``apiVersion: orchestrator/v1``): a Configuration on a cron."""

    name: str
    cron: str
    configuration_name: str = ""  # a Configuration of the same git application, or
    configuration_id: str = ""  # an existing configuration id
    timezone: str = "UTC"
    start: str | None = None  # ISO 8601, UTC, ``%Y-%m-%dT%H:%M:%SZ``
    end: str | None = None
    status: str = "ACTIVE"
    catchup: str = "latest"
    max_catchup: int = 1
    concurrency: str = "Allow"
    slot_parameter: str = ""
    source: str = ""
    line: int = 1  # where ``metadata.name`` is, for errors found after validation (sync)
    col: int = 1
    digest: str = ""


# ---------------------------------------------------------------- stored records (AI API names)


@dataclass(frozen=True)
class Scenario:
    id: str
    name: str
    description: str
    created_at: str
    modified_at: str
    resource_group: str = "default"


@dataclass(frozen=True)
class Executable:
    id: str
    scenario_id: str
    version_id: str
    name: str
    description: str
    deployable: bool
    parameters: tuple[ParameterDecl, ...]
    input_artifacts: tuple[tuple[str, str], ...]  # (name, kind)
    output_artifacts: tuple[tuple[str, str], ...]
    digest: str
    source: str
    created_at: str
    modified_at: str
    resource_group: str = "default"


@dataclass(frozen=True)
class Configuration:
    id: str
    name: str
    scenario_id: str
    executable_id: str
    parameter_bindings: tuple[tuple[str, str], ...]
    input_artifact_bindings: tuple[tuple[str, str], ...]  # (key, artifactId)
    created_at: str
    resource_group: str = "default"


@dataclass(frozen=True)
class Execution:
    id: str
    configuration_id: str
    configuration_name: str
    scenario_id: str
    executable_id: str
    status: Status
    target_status: str
    status_message: str
    created_at: str
    modified_at: str
    submission_time: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    execution_schedule_id: str | None = None
    workdir: str = ""
    resource_group: str = "default"
    parent_execution_id: str | None = None
    schedule_slot: str | None = None
    extra_parameters: tuple[tuple[str, str], ...] = ()
    commit_sha: str | None = None
    status_details: str | None = None


@dataclass(frozen=True)
class StepRecord:
    execution_id: str
    node_id: str
    kind: str
    template: str
    state: StepState
    attempt: int
    exit_code: int | None
    started_at: float | None
    finished_at: float | None
    message: str
    log_path: str
    outputs: str  # JSON of output parameters and artifact paths
    cache_key: str = ""
    cache_inputs: str = ""  # JSON of the key's components (for `executions explain`)
    cache_note: str = ""


@dataclass(frozen=True)
class Attempt:
    execution_id: str
    node_id: str
    attempt: int
    exit_code: int | None
    started_at: float | None
    finished_at: float | None
    log_path: str
    message: str


@dataclass(frozen=True)
class Artifact:
    id: str
    name: str
    kind: str
    url: str
    scenario_id: str
    description: str
    labels: tuple[tuple[str, str], ...]
    created_at: str
    modified_at: str
    execution_id: str | None = None
    configuration_id: str | None = None
    digest: str = ""
    size: int = 0
    resource_group: str = "default"


@dataclass(frozen=True)
class MetricPoint:
    execution_id: str
    name: str
    value: float
    timestamp: str
    step: int | None
    labels: tuple[tuple[str, str], ...] = ()
