"""The executor seam (DESIGN §5): where a prepared leaf runs.

Owns: the :class:`Executor` protocol the runner talks to — ``open`` (before the first step: checks
that refuse a run the executor cannot honour), ``submit`` (a prepared leaf: argv, env, step
directory, inputs, declared outputs, log cap; the template gives image and resources; returns the
step's handle, which the runner's supervisor starts, drains and reaps), ``cancel`` (a deadline or a
stop: the kill grace, then kill) and ``shutdown`` (after the last step) — the host executor
:class:`LocalExecutor` (the step is a supervised process tree on this machine, exactly as before
the seam), and :func:`choose`, which picks one from ``--executor`` / ``$ORCHESTRATOR_EXECUTOR``
(``local`` | ``container`` | ``podman`` | ``docker`` | ``ray`` | ``ray://HOST:PORT`` | ``ray:HOST:PORT``:
:mod:`orchestrator.run.ray_exec`). The handle is a
:class:`~orchestrator.run.steps.StepProcess` (or a subclass): the exit status, the log file, the
tracking file and the declared output paths are where the runner reads them afterwards.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from orchestrator.errors import UsageError
from orchestrator.plan.graph import Node
from orchestrator.run.prepare import Prepared
from orchestrator.run.steps import StepProcess, StepSpec

ENV_VAR = "ORCHESTRATOR_EXECUTOR"
RAY_TRUSTED_VAR = "ORCHESTRATOR_RAY_TRUSTED"  # "1": the operator accepts Ray's single-tenant trust model
CHOICES = ("local", "container", "podman", "docker")


class Executor(Protocol):
    name: str

    def open(self, r: Any) -> None:
        """Before the first step of execution ``r`` (a Runner): refuse what cannot run here."""

    def submit(self, r: Any, node: Node, prep: Prepared, attempt: int) -> StepProcess:
        """The handle of one prepared attempt of a leaf (not started yet: the supervisor starts it)."""

    def companion(self, spec: StepSpec) -> StepProcess:
        """The handle of a sidecar or another containerSet container of a submitted step."""

    def cancel(self, handle: StepProcess, reason: str, grace: float) -> None:
        """Stop a step: a polite stop, ``grace`` seconds, then a kill."""

    def shutdown(self) -> None:
        """After the last step: nothing of this executor may outlive the execution."""


class LocalExecutor:
    """Steps as process trees on this machine (:mod:`orchestrator.run.steps`)."""

    name = "local"

    def open(self, r: Any) -> None:
        return None

    def submit(self, r: Any, node: Node, prep: Prepared, attempt: int) -> StepProcess:
        return StepProcess(prep.spec)

    def companion(self, spec: StepSpec) -> StepProcess:
        return StepProcess(spec)

    def cancel(self, handle: StepProcess, reason: str, grace: float) -> None:
        handle.kill(reason, grace=grace)

    def shutdown(self) -> None:
        return None


def choose(name: str | None = None) -> Executor:
    """The executor named by ``name``, else ``$ORCHESTRATOR_EXECUTOR``, else the host executor."""
    choice = (name or os.environ.get(ENV_VAR) or "local").strip()
    if choice.lower().startswith("ray"):
        from orchestrator.run.ray_exec import RayExecutor, parse_address  # only when asked for

        return RayExecutor(parse_address(choice))
    choice = choice.lower()
    if choice not in CHOICES:
        raise UsageError(f"unknown executor {choice!r}",
                         hint=f"use one of: {', '.join(CHOICES)}, ray, ray://HOST:PORT, ray:HOST:PORT")
    if choice == "local":
        return LocalExecutor()
    from orchestrator.run.container import ContainerExecutor  # only when asked for

    return ContainerExecutor(choice)


def preflight(spec: Any, text: str, choice: str | None = None) -> None:
    """Before an execution is written: what the chosen executor would refuse at ``open`` (the Ray
    executor: extra containers, an unreachable cluster, a resource no node has), so that such a
    ``run`` exits 2 with nothing in the store. Nothing for the other executors."""
    picked = (choice or os.environ.get(ENV_VAR) or "local").strip()
    if picked.lower().startswith("ray"):
        getattr(choose(picked), "preflight")(spec, text)


def check_ray(choice: str) -> None:
    """``--executor ray…``: the address is well formed and Ray is installed (without importing it)."""
    from orchestrator.run.ray_exec import available, parse_address

    parse_address(choice)
    if not available():
        raise UsageError("the Ray executor needs Ray", hint="pip install 'orchestrator[ray]'")


def check_server_executor(choice: str | None = None, who: str = "the server") -> None:
    """Refuse the Ray executor for executions a server or the scheduler starts (``serve``/``ui``:
    API submissions, schedules, sweeps; ``scheduler`` and ``schedules backfill``: templates synced
    from git repositories others push to) unless ``$ORCHESTRATOR_RAY_TRUSTED=1``: Ray's token
    authentication (when the cluster has it) only keeps out who has no token; every step runs on a
    node that holds the cluster's token, so any step can ``ray.init`` and run code on every node,
    the head included, and read or poison what other users' steps ship (their S3 credentials
    travel in task payloads)."""
    picked = (choice or os.environ.get(ENV_VAR) or "local").strip()
    if picked.lower().startswith("ray") and os.environ.get(RAY_TRUSTED_VAR, "").strip() != "1":
        raise UsageError(f"{who} refuses the Ray executor ({ENV_VAR}={picked}): a Ray cluster "
                         "is single-tenant (its token authentication, when on, keeps out only who has no "
                         "token, and every step runs on a node that holds it), so every step on the cluster "
                         "can reach every node and the Ray API, and with them the other users' steps, inputs "
                         "and S3 credentials",
                         hint=f"set {RAY_TRUSTED_VAR}=1 only when everyone who can submit to this server "
                         "may trust each other (one team per dedicated Ray cluster, the head node not on "
                         "this machine); see README 'Running on a Ray cluster' > Trust model")
