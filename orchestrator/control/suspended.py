"""Resuming suspended steps of a running execution: Argo's ``argo resume`` and ``argo node set``.

Owns: checking a resume request against the execution (it runs, the step is suspended, every output
parameter given is a ``valueFrom.supplied`` output of a step resumed) and handing it to the
execution's runner through the store (:class:`~orchestrator.store.resume_records.ResumeRecords`);
the runner ends the steps (:mod:`orchestrator.run.suspend`). A terminal execution is not resumed
here: ``executions resume`` then re-runs what did not complete (:meth:`Service.plan_resume`).
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import UsageError
from orchestrator.model import StepState

SUSPENDED = "suspended"  # how the runner's message of a waiting suspend step starts


def suspended_steps(svc: Any, execution_id: str) -> list[Any]:
    """Step records of ``execution_id`` that are suspended now."""
    return [s for s in svc.store.list_steps(svc.rg, execution_id)
            if s.state == StepState.RUNNING and s.message.startswith(SUSPENDED)]


def resume(svc: Any, execution_id: str, step: str | None = None,
           outputs: dict[str, str] | None = None) -> list[str]:
    """Ask the runner to resume ``step`` (None: every suspended step) with ``outputs``; the step ids."""
    ex = svc.store.get_execution(svc.rg, execution_id)
    waiting = suspended_steps(svc, execution_id)
    if not waiting:
        raise UsageError(f"execution {execution_id} is {ex.status.value} and has no suspended step",
                         hint="wait for it to end, or stop it (`orchestrator executions stop ID`)")
    targets = [s for s in waiting if step is None or s.node_id == step]
    if not targets:
        raise UsageError(f"step {step!r} is not suspended",
                         hint=f"suspended now: {', '.join(s.node_id for s in waiting)}")
    if outputs:
        spec, _doc = svc.load_executable(ex.executable_id)
        expected = {o.name for s in targets for o in spec.templates[s.template].output_parameters
                    if o.supplied and s.template in spec.templates}
        unknown = sorted(set(outputs) - expected)
        if unknown:
            raise UsageError(f"no suspended step expects the output parameter {unknown[0]!r}",
                             hint=f"supplied outputs: {', '.join(sorted(expected)) or 'none'}")
    svc.store.request_resume(svc.rg, execution_id, step or "", outputs or {})
    return [s.node_id for s in targets]
