"""What a stored execution ran with, and where a step's log really is: shared by the CLI's read
commands and the web dashboard.

Owns: the parameter values of an execution with their source (configuration, schedule slot, the
sweep trial that sampled them, or the template's default), its input artifacts (a ``models:/`` binding with the version it resolved to),
and following a CACHED step to the step whose log it reused. Reads the store only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from orchestrator.control import modelrefs
from orchestrator.errors import NotFound
from orchestrator.model import Execution, StepRecord, StepState

if TYPE_CHECKING:
    from orchestrator.control.service import Service

_SOURCE = re.compile(r"execution ([0-9a-f]{8,})(?: step '([^']*)')?")


def run_inputs(svc: Service, ex: Execution) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The parameter values an execution ran with (from its configuration — a CLI run binds every
    value —, its schedule slot, or the template's default) and its input artifacts (for a
    ``models:/`` binding: the reference and the model version it resolved to at creation)."""
    cfg = svc.store.get_configuration(svc.rg, ex.configuration_id)
    given = {k: (v, "configuration") for k, v in cfg.parameter_bindings}
    if ex.extra_parameters:
        source = _extra_source(svc, ex)
        given.update({k: (v, source) for k, v in ex.extra_parameters})
    try:
        decls = svc.store.get_executable(svc.rg, ex.executable_id).parameters
    except NotFound:
        decls = ()
    params = [{"name": d.name, "value": given[d.name][0] if d.name in given else d.default,
               "source": given[d.name][1] if d.name in given else "template default"} for d in decls]
    declared = {d.name for d in decls}
    params += [{"name": k, "value": v, "source": s} for k, (v, s) in given.items() if k not in declared]
    arts = []
    for item in modelrefs.execution_inputs(svc.store, svc.rg, ex.id, cfg.input_artifact_bindings):
        out = modelrefs.wire(item)  # with reference, model, modelVersion for a models:/ binding
        try:
            a = svc.store.get_artifact(svc.rg, item["artifactId"])
            arts.append({**out, "kind": a.kind, "url": a.url})
        except NotFound:
            arts.append({**out, "kind": None, "url": None})
    return params, arts


def _extra_source(svc: Service, ex: Execution) -> str:
    """Where the values an execution carries beyond its configuration came from: its schedule slot,
    or the sweep that sampled them for one of its trials."""
    from orchestrator.store.sweep_records import SweepRecords

    if ex.schedule_slot or ex.execution_schedule_id:
        return "schedule slot"
    link = SweepRecords(svc.store).sweep_of(svc.rg, ex.id)
    return f"sweep {link[0]} trial {link[1]}" if link else "execution"


def log_source(svc: Service, step: StepRecord) -> StepRecord:
    """The step whose log a CACHED step reused (following cache hits of cache hits), or the step itself."""
    for _ in range(50):
        m = _SOURCE.search(step.cache_note or step.message) if step.state == StepState.CACHED else None
        if not m:
            break
        try:
            steps = {s.node_id: s for s in svc.store.list_steps(svc.rg, m.group(1))}
        except NotFound:
            break
        source = steps.get(m.group(2) or step.node_id)
        if source is None:
            break
        step = source
    return step
