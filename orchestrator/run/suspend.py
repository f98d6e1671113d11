"""Argo ``suspend`` steps: waiting for a ``duration`` or for a resume, and what a resumed step outputs.

Owns: starting a suspend node (a ``duration`` — a placeholder is resolved now — or none: it waits
until ``orchestrator executions resume ID [--step NODE] [-o NAME=VALUE]``, Argo's ``argo resume`` /
``argo node set``), taking the resume requests any process left in the store, and ending a suspend
node as Argo does: a ``valueFrom.supplied`` output takes the value given at the resume, else its
``valueFrom.default``, else the default of the input parameter of the same name (its first enum
value when it has no default); with none of them the step fails with Argo's message. A duration
that runs out ends the node the same way. Functions over the runner's state; called by
:mod:`orchestrator.run.flow` and :mod:`orchestrator.run.runner`.
"""

from __future__ import annotations

import heapq
import time
from typing import Any

from orchestrator.model import StepState
from orchestrator.plan.graph import Node
from orchestrator.run import limits

FOREVER = float("inf")


def start(r: Any, node: Node) -> None:
    """The suspend node ``node`` starts waiting (a ResolveError: its duration does not resolve)."""
    if (node.template.suspend or "").strip():
        seconds = limits.suspend_seconds(r, node)
        r.record(node.id, StepState.RUNNING, f"suspended for {seconds:g} s")
        due = time.monotonic() + seconds
    else:
        r.record(node.id, StepState.RUNNING, f"suspended: waiting for `orchestrator executions resume {r.ex.id}`")
        due = FOREVER
    heapq.heappush(r.delayed, (due, node.order, node.id))
    r.suspended.add(node.id)


def end(r: Any, nid: str, outputs: dict[str, str], message: str = "") -> None:
    """``nid`` is resumed (``outputs``: supplied output parameters) or its duration ran out."""
    r.suspended.discard(nid)
    node = r.graph.nodes[nid]
    d = r.ctx.data[nid]
    inputs = {p.name: p for p in node.template.input_parameters}
    for o in node.template.output_parameters:
        if o.name in outputs:
            d.out_params[o.name] = outputs[o.name]
        elif o.value is not None:
            d.out_params[o.name] = r.ctx.declared_path(node, o.value) if "{{" in o.value else o.value
        elif o.supplied:
            decl = inputs.get(o.name)
            default = o.default if o.default is not None else decl.default if decl is not None else None
            if default is None and decl is not None and decl.enum:
                default = decl.enum[0]
            if default is None:
                return r.fail(nid, f"raw output parameter {o.name!r} has not been set and does not have a default "
                              "value (resume with -o NAME=VALUE)")
            d.out_params[o.name] = default
    r.settle(nid, StepState.SUCCEEDED, message)


def expired(r: Any, nid: str, due: float, now: float) -> None:
    """``nid`` left the delayed queue: its duration is over, the execution stops, or it was halted."""
    if r.stopped:
        r.suspended.discard(nid)
        r.settle(nid, StepState.STOPPED, "stopped by request while suspended")
    elif due > now:  # cut short: the deadline
        r.suspended.discard(nid)
        r.fail(nid, f"suspended step cancelled: {r.stop_reason}")
    else:
        end(r, nid, {})


def check_resume(r: Any) -> None:
    """Resume what the pending requests name (every suspended node, or one)."""
    if not r.suspended:
        return
    for node_id, outputs in r.store.take_resume_requests(r.rg, r.ex.id):
        targets = sorted(n for n in r.suspended if not node_id or n == node_id)
        if not targets:
            continue
        r.delayed = [x for x in r.delayed if x[2] not in targets]
        heapq.heapify(r.delayed)
        for nid in targets:
            end(r, nid, outputs, "resumed")
