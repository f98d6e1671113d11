"""Argo lifecycle hooks other than ``exit`` at run time: when a hook fires and what its end means.

Owns: arming a hook node (a step's or task's hook once the step is ready to start; a workflow's
from the start), re-evaluating every armed hook's expression whenever a node's state changes
(the runner's ``record`` calls :func:`check`; the safe expr-lang evaluator, never ``eval``), firing
it at most once (it then runs its template in parallel to the step), and settling one that never
fired: a step's hook when its step has ended with the expression still false (SKIPPED), a
workflow's hook when the execution is idle, after one last look with the final
``workflow.status`` (:func:`at_end`; the exit handler runs after the hooks that fired). What
follows a hooked step waits for its hooks (graph ``after``); a hook that ends ``Failed`` is
ignored and one that ends ``Error`` (could not start, a bad expression) fails its steps/dag
template (:func:`orchestrator.run.flow.continues`), as Argo's lifecycle-hook docs describe.
A resumed execution (``executions resume``: Argo's ``argo retry``) keeps a hook that fired and
succeeded before when its step (or the workflow) is reused — settled from its record, not fired
again —, and evaluates again the hooks of a step that runs again (:func:`arm`).
Functions over the runner's state; called by :mod:`orchestrator.run.flow` and the runner.
"""

from __future__ import annotations

import heapq
import json
import re
from typing import Any

from orchestrator.model import StepState
from orchestrator.plan.graph import LEAF, Node
from orchestrator.plan.resolve import ResolveError
from orchestrator.run import limits
from orchestrator.spec import exprlang, placeholders

NEVER = (StepState.SKIPPED, StepState.OMITTED)
QUOTED = re.compile(r"""(["'])\{\{([^{}]*)\}\}\1""")  # "{{inputs.parameters.x}}" in an expression


def arm(r: Any, nid: str) -> None:
    """Lifecycle hook ``nid`` became ready: it waits for its expression (fires at once if true)."""
    node = r.graph.nodes[nid]
    if node.hook_of and r.ctx.data[node.hook_of].state in NEVER:  # its step never ran
        return r.settle(nid, r.ctx.data[node.hook_of].state)
    if nid in r.reuse:  # resumed (Argo's ``argo retry``): it fired and succeeded in the execution resumed
        if not node.hook_of or _reused(r, node.hook_of):
            r.hooks_fired.add(nid)  # its step is reused too: the hook stands as it ran, never fired again
            r.messages[nid] = "it fired in the execution resumed"
            heapq.heappush(r.ready, (node.order, nid))
            return None
        del r.reuse[nid]  # its step runs again: the hook is evaluated again, and runs again if it fires
    r.armed[nid] = None
    check(r)


def _reused(r: Any, step: str) -> bool:
    """Step ``step`` (a leaf, or the end of a steps/dag call) is reused from the execution resumed:
    a leaf in ``reuse``, a call whose every step compiled before the run is (its hooks aside)."""
    node = r.graph.nodes[step]
    if node.partner and node.kind != LEAF:
        call = node.partner
        inner = [n for n, m in r.graph.nodes.items() if m.kind == LEAF and not m.hook_of and call in r.scopes(m)]
        return bool(inner) and all(n in r.reuse and n not in r.force for n in inner)
    return step in r.reuse and step not in r.force


def _fires(r: Any, node: Node) -> bool | None:
    """The hook's expression now: True/False, None while a name it needs has no value yet."""
    text = node.trigger
    if "{{" in text:  # placeholders first, each value one literal (a quoted one: that string)
        value = lambda ex: r.ctx.caller(node, ex.strip())  # noqa: E731
        text = QUOTED.sub(lambda m: json.dumps(value(m.group(2))), text)
        text = placeholders.substitute(text, lambda ex: limits.literal(value(ex)))
    try:
        value = r.ctx.expression_value(node, text, lambda p: r.ctx.caller(node, p))
    except exprlang.Missing:
        return None
    return value is True


def check(r: Any, final: bool = False) -> None:
    """Evaluate every armed hook once; fire the true ones, settle those whose step has ended (all
    of them with ``final``). Re-entrant calls (a settle inside) are no-ops."""
    if not r.armed or r.hook_checking:
        return
    r.hook_checking = True
    try:
        for hid in list(r.armed):
            if hid not in r.armed:
                continue
            node = r.graph.nodes[hid]
            ended = final or (bool(node.hook_of) and r.ctx.data[node.hook_of].state.done)
            try:
                fire = _fires(r, node)
            except (exprlang.ExprLangError, ResolveError) as exc:
                del r.armed[hid]
                r.fail(hid, f"lifecycle hook expression {node.trigger[:120]!r}: {exc.message}")
                continue
            if fire:
                del r.armed[hid]
                r.hooks_fired.add(hid)
                r.messages[hid] = f"its expression is true: {node.trigger[:120]}"
                heapq.heappush(r.ready, (node.order, hid))
            elif ended:
                del r.armed[hid]
                if r.stop_reason and not node.handler:
                    r.settle(hid, StepState.OMITTED, "the execution was stopped")
                else:
                    r.settle(hid, StepState.SKIPPED, f"its expression was never true: {node.trigger[:120]}")
    finally:
        r.hook_checking = False


def at_end(r: Any) -> bool:
    """The execution is idle before its exit handler: the hooks still armed (the workflow's) see
    the final ``workflow.status`` once; True when that changed anything (the runner goes on)."""
    if not r.armed:
        return False
    failed = r.stop_reason or any(not r.handled(f) for f in r.failures)
    r.ctx.status = "Failed" if failed else "Succeeded"
    check(r, final=True)
    return True
