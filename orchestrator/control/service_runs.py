"""The Service's background runs and execution control: submit, run stored, stop, resume.

Owns: creating a stored configuration's execution and starting its runner in a background
process (API, scheduler), running such an execution in this process (``orchestrator _execute``),
stop requests, resume/rerun plans that reuse a parent's completed steps, and the read-side
``explain`` and ``metric_goals``. A mixin of :class:`~orchestrator.control.service.Service`
(uses its ``store``, ``objects``, ``home``, ``rg``, ``tracking_base``, ``load_executable`` and
``execute``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.control import modelrefs
from orchestrator.errors import ArtifactError, BindingError, NotFound, StoreError, UsageError, ValidationFailed
from orchestrator.model import Execution, Status, WorkflowSpec
from orchestrator.plan.binding import RunPlan, bind_parameters
from orchestrator.run import reaper
from orchestrator.store.artifacts import ObjectStore
from orchestrator.store.sqlite import SqliteStore

if TYPE_CHECKING:  # names used only in annotations
    from orchestrator.control.service import Service


class ServiceRuns:
    """Background runs and execution control; a mixin of the Service."""

    home: Path
    rg: str
    tracking_base: str
    store: SqliteStore
    objects: ObjectStore

    # ------------------------------------------------------------------ background runs (API, scheduler)
    def scoped(self, rg: str) -> Service:
        """The same service (store, object store, home) acting in resource group ``rg``."""
        import copy

        other = copy.copy(self)
        other.rg = rg
        return other

    def submit(self, configuration_id: str, *, schedule_id: str | None = None, slot: str | None = None,
               extra_parameters: Sequence[tuple[str, str]] = (), commit_sha: str | None = None,
               env: Callable[[Execution], dict[str, str]] | None = None, jobs: int | None = None) -> Execution:
        """Check a stored configuration, create its execution and start its runner in the background.

        Raises before anything is written when the executable is gone or a binding no longer
        matches; a duplicate ``(schedule_id, slot)`` raises :class:`Conflict` from the store.
        """
        from orchestrator.run.background import spawn_runner

        cfg = self.store.get_configuration(self.rg, configuration_id)
        spec, _ = self.load_executable(cfg.executable_id)
        if not spec.entrypoint:
            raise UsageError(f"{spec.executable_id!r} has no entrypoint: it is a library of templates for templateRef")
        bind_parameters(spec, [*cfg.parameter_bindings, *extra_parameters])
        inputs = modelrefs.resolve_bindings(self.store, self.rg, cfg.input_artifact_bindings)  # models:/ now
        for item in inputs:
            try:
                self.objects.check(self.rg, self.store.get_artifact(self.rg, item["artifactId"]).url)
            except NotFound:
                raise ArtifactError(f"input artifact {item['key']!r}: artifact {item['artifactId']!r} "
                                    "no longer exists") from None
        commit_sha = commit_sha or self.store.executable_origin(self.rg, cfg.executable_id)[0]
        with self.store.transaction():
            ex = self.store.create_execution(self.rg, cfg, str(self.home / "executions"), schedule_id=schedule_id,
                                             slot=slot, extra_parameters=extra_parameters, commit_sha=commit_sha)
            self.store.set_execution_inputs(self.rg, ex.id, inputs)
        if env is None and self.tracking_base:
            from orchestrator.control import tokens

            base = self.tracking_base
            env = lambda e: tokens.tracking_env(self.store, self.rg, e.id, base)  # noqa: E731
        try:
            pid = spawn_runner(self.home, self.rg, ex.id, env(ex) if env else None, jobs)
        except StoreError as exc:
            self.store.set_status(self.rg, ex.id, Status.DEAD, exc.message)
        else:
            # The runner is the child from now on: the creator (a `scheduler --once`, a CLI) may exit
            # before the child's first heartbeat, and the reaper must not take that for a dead runner.
            self.store.heartbeat(self.rg, ex.id, pid)
        return self.store.get_execution(self.rg, ex.id)

    def run_stored(self, execution_id: str, *, jobs: int = 1) -> Status:
        """Run an execution created earlier (by :meth:`submit`) in this process: the body of
        ``orchestrator _execute``. A template that stopped validating ends it DEAD with the reason."""
        ex = self.store.get_execution(self.rg, execution_id)
        if ex.status != Status.UNKNOWN:
            raise UsageError(f"execution {execution_id} is {ex.status.value}; only a new execution can be started")
        cfg = self.store.get_configuration(self.rg, ex.configuration_id)
        try:
            spec, doc = self.load_executable(ex.executable_id)
            params = bind_parameters(spec, [*cfg.parameter_bindings, *ex.extra_parameters])
        except (UsageError, BindingError, ValidationFailed) as exc:
            self.store.set_status(self.rg, ex.id, Status.DEAD, f"cannot start: {exc}")
            return Status.DEAD
        # A resumed execution started in the background (the dashboard) reuses its parent's completed steps.
        reuse = self._parent_reuse(ex.parent_execution_id, spec, set()) if ex.parent_execution_id else None
        return self.execute(ex, RunPlan(spec, params, document=doc), jobs=jobs, reuse=reuse)

    # ------------------------------------------------------------------ execution control
    def stop(self, execution_id: str, wait: float = 0.0) -> Execution:
        """Request a stop (any process may); the execution's runner moves it to STOPPED."""
        import time

        self.store.request_stop(self.rg, execution_id)
        reaper.reap(self.store)  # a runner that is already gone cannot honour the request
        deadline = time.monotonic() + wait
        ex = self.store.get_execution(self.rg, execution_id)
        while not ex.status.terminal and time.monotonic() < deadline:
            time.sleep(0.1)
            ex = self.store.get_execution(self.rg, execution_id)
        return ex

    def plan_resume(self, execution_id: str, from_step: str | None = None) -> tuple[
            Execution, RunPlan, dict[str, tuple[str, dict[str, object], str]], set[str]]:
        """A new execution linked to ``execution_id`` that re-runs only what must run again.

        Resume (``from_step`` None): every step that did not complete. Rerun: ``from_step`` and
        everything downstream of it. Completed steps' recorded outputs are reused.
        """
        from orchestrator.plan.graph import compile_workflow, select

        parent = self.store.get_execution(self.rg, execution_id)
        if not parent.status.terminal:
            raise UsageError(f"execution {execution_id} is {parent.status.value}",
                             hint="wait for it to end, or stop it first")
        spec, doc = self.load_executable(parent.executable_id)
        cfg = self.store.get_configuration(self.rg, parent.configuration_id)
        # The template may have lost a parameter since: its old binding is dropped, not an error.
        params = bind_parameters(spec, cfg.parameter_bindings, ignore_unknown=True)
        graph = compile_workflow(spec)
        rerun = select(graph, from_step) if from_step else set()
        if from_step and graph.nodes[from_step].kind != "leaf":
            raise UsageError(f"{from_step!r} is not a step that runs a container")
        reuse = self._parent_reuse(parent.id, spec, rerun, graph)
        plan = RunPlan(spec, params, document=doc)
        # The parent's inputs (the same model version), so reused and re-run steps agree.
        inputs = modelrefs.execution_inputs(self.store, self.rg, parent.id, cfg.input_artifact_bindings)
        with self.store.transaction():
            ex = self.store.create_execution(self.rg, cfg, str(self.home / "executions"), parent_execution_id=parent.id)
            self.store.set_execution_inputs(self.rg, ex.id, inputs)
        return ex, plan, reuse, {n for n in rerun if graph.nodes[n].kind == "leaf"}

    def _parent_reuse(self, parent_id: str, spec: WorkflowSpec, rerun: set[str],
                      graph: Any = None) -> dict[str, tuple[str, dict[str, object], str]]:
        """The completed steps of ``parent_id`` a resumed execution reuses (all but ``rerun``)."""
        import json

        from orchestrator.plan.graph import compile_workflow

        graph = graph if graph is not None else compile_workflow(spec)
        reuse: dict[str, tuple[str, dict[str, object], str]] = {}
        for s in self.store.list_steps(self.rg, parent_id):
            if s.kind == "leaf" and s.node_id in graph.nodes and s.node_id not in rerun \
                    and s.state.value in ("SUCCEEDED", "CACHED"):
                reuse[s.node_id] = (parent_id, json.loads(s.outputs or "{}"), s.cache_key)
        return reuse

    def explain(self, execution_id: str) -> list[dict[str, object]]:
        """For every step of an execution: cache hit or miss, and which input changed."""
        from orchestrator.run.explain import explain

        return explain(self.store, self.rg, execution_id)

    def metric_goals(self, executable_id: str) -> tuple[dict[str, str], list[str]]:
        """Goals (``min``/``max``) the executable declares for its metrics: see :mod:`orchestrator.control.goals`."""
        from orchestrator.control.goals import metric_goals

        return metric_goals(self.store, self.rg, executable_id)
