"""Argo lifecycle hooks other than ``exit`` at run time: when a hook fires and what its end means.

Owns: arming a hook node (a step's or task's hook once the step is ready to start; a workflow's
from the start), re-evaluating an armed hook's expression whenever a node it reads changes (the
runner's ``record`` calls :func:`check` with the node; each expression is parsed once when armed,
its placeholders bound as values, never spliced in (spec.exprholes), and :class:`HookIndex` maps a
node to the hooks that read it; the safe expr-lang evaluator, never ``eval``), firing
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
from dataclasses import dataclass, field
from typing import Any

from orchestrator.model import StepState
from orchestrator.plan.graph import LEAF, LOOP, LOOP_END, Node
from orchestrator.plan.resolve import ResolveError
from orchestrator.spec import exprholes, exprlang

NEVER = (StepState.SKIPPED, StepState.OMITTED)
# workflow variables that never change during a run: a hook reading only these (and inputs, item) is
# evaluated when armed and when its step changes; any other workflow variable: on every change
STILL = ("parameters", "labels", "annotations", "name", "uid", "creationTimestamp", "mainEntrypoint",
         "namespace", "serviceAccountName")


@dataclass
class HookIndex:
    """Armed hooks' parsed expressions and which node changes each one must see."""

    parsed: dict[str, exprholes.Compiled | exprlang.ExprLangError] = field(default_factory=dict)
    by_node: dict[str, dict[str, None]] = field(default_factory=dict)  # node -> hooks reading it
    always: dict[str, None] = field(default_factory=dict)  # hooks reading something changing anywhere
    queue: list[tuple[list[str] | None, bool]] = field(default_factory=list)  # (hooks, or None: all; final)
    evaluations: int = 0


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
    _index(r, node)
    check(r, hooks=[nid])


def _index(r: Any, node: Node) -> None:
    """Parse the hook's expression once and note the nodes whose changes it must see."""
    idx: HookIndex = r.hook_index
    try:
        compiled = exprholes.compile_text(node.trigger)
    except exprlang.ExprLangError as exc:
        idx.parsed[node.id] = exc  # reported as the hook's error on its evaluation
        return
    idx.parsed[node.id] = compiled
    watched = [node.hook_of] if node.hook_of else []
    for name in compiled.names:
        ids = _reads(r, node, name)
        if ids is None:
            idx.always[node.id] = None  # a run-time loop's items, a workflow's state, a dynamic name
            return
        watched.extend(ids)
    for n in watched:
        idx.by_node.setdefault(n, {})[node.id] = None


def _reads(r: Any, node: Node, name: str) -> list[str] | None:
    """The nodes whose state the value of ``name`` (caller scope) depends on, as the resolver
    (plan.resolve ``caller``) reads it: [] when fixed during the run, None when not known statically."""
    parts = name.split(".")
    if parts[0] in ("inputs", "item") or (parts[0] == "workflow" and parts[1:2] and parts[1] in STILL):
        return []
    ids = node.siblings.get(parts[1], ()) if parts[0] in ("steps", "tasks") and len(parts) >= 3 else ()
    if not ids or any(i not in r.graph.nodes for i in ids):
        return None
    known = [r.graph.nodes[i] for i in ids]
    if parts[2:] in (["status"], ["exitCode"]) and r.ctx.is_loop(ids):  # a loop's end, else its first
        known = [m for m in known if m.kind in (LOOP, LOOP_END)] or known[:1]
    elif any(m.kind in (LOOP, LOOP_END) for m in known):
        return None  # a run-time loop's outputs: its items, added when it starts
    return [i for m in known for i in (m.id, m.partner) if i]


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
    r.hook_index.evaluations += 1
    compiled = r.hook_index.parsed.get(node.id)
    if compiled is None:  # armed before this index existed (never): parse it now
        _index(r, node)
        compiled = r.hook_index.parsed[node.id]
    if isinstance(compiled, exprlang.ExprLangError):
        raise compiled
    extra = exprholes.bind(compiled, lambda ex: r.ctx.caller(node, ex))
    try:
        value = r.ctx.expression_value(node, compiled.tree, lambda p: r.ctx.caller(node, p), extra)
    except exprlang.Missing:
        return None
    return value is True


def check(r: Any, final: bool = False, changed: str | None = None, hooks: list[str] | None = None) -> None:
    """Evaluate the armed hooks that must see a change — those reading node ``changed``, the hooks
    ``hooks``, else all of them —; fire the true ones, settle those whose step has ended (all of them
    with ``final``). A call made during a check (a settle inside) is queued and run by that check."""
    if not r.armed:
        return
    idx: HookIndex = r.hook_index
    if hooks is None and changed is not None and not final:
        hooks = [*idx.by_node.get(changed, ()), *idx.always]
        if not hooks:
            return
    idx.queue.append((hooks, final))
    if r.hook_checking:
        return
    r.hook_checking = True
    try:
        while idx.queue:
            todo, last = idx.queue.pop(0)
            for hid in list(r.armed) if todo is None else todo:
                if hid in r.armed:
                    _evaluate(r, hid, last)
    finally:
        idx.queue.clear()
        r.hook_checking = False


def _evaluate(r: Any, hid: str, final: bool) -> None:
    """One armed hook: fired when true, settled when its step has ended (or ``final``)."""
    node = r.graph.nodes[hid]
    ended = final or (bool(node.hook_of) and r.ctx.data[node.hook_of].state.done)
    try:
        fire = _fires(r, node)
    except (exprlang.ExprLangError, ResolveError) as exc:
        del r.armed[hid]
        r.fail(hid, f"lifecycle hook expression {node.trigger[:120]!r}: {exc.message}")
        return
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


def at_end(r: Any) -> bool:
    """The execution is idle before its exit handler: the hooks still armed (the workflow's) see
    the final ``workflow.status`` once; True when that changed anything (the runner goes on)."""
    if not r.armed:
        return False
    failed = r.stop_reason or any(not r.handled(f) for f in r.failures)
    r.ctx.status = "Failed" if failed else "Succeeded"
    check(r, final=True)
    return True
