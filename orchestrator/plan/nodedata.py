"""What the run-time resolver knows of each node, and the error a failed resolution raises.

Owns: :class:`NodeData` (a node's state, resolved inputs, outputs, exit code, times, loop
instances and retry attempt while an execution runs) and :class:`ResolveError`. Re-exported by
:mod:`orchestrator.plan.resolve`, and below :mod:`orchestrator.plan.conditions` (a base of the
resolver's ``Context``). Pure data; must not import run, store or control.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import OrchestratorError
from orchestrator.model import StepState


class ResolveError(OrchestratorError):
    """A placeholder could not be resolved at run time (the node fails with this message)."""

    code = "UNRESOLVED"


@dataclass
class NodeData:
    """What is known about a node while the execution runs."""

    state: StepState = StepState.PENDING
    params: dict[str, str] = field(default_factory=dict)  # resolved input parameters
    in_artifacts: dict[str, Path] = field(default_factory=dict)
    out_params: dict[str, str] = field(default_factory=dict)
    out_artifacts: dict[str, Path] = field(default_factory=dict)
    out_digests: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    started: float | None = None
    finished: float | None = None
    instances: list[str] | None = None  # a withParam/withSequence loop: the nodes its items became
    attempt: int = 1  # {{retries}} is attempt - 1
    last_retry: dict[str, str] = field(default_factory=dict)  # {{lastRetry.exitCode|status|duration|message}}
