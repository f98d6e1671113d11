"""Argo's control flow over one execution's state: which node runs, is omitted, or fails how.

Owns: the decision for a node that became ready (``advance``: depends/when/inputs, exit hooks,
loops whose items are known only now, recursive calls compiled one level at a time), Argo's
``dag.failFast`` per DAG (decided on its target tasks; what was ready then still starts, so ``-j``
never changes which steps run), ``continueOn``, which failures a ``depends`` handles, and
``{{workflow.failures}}``. Functions over the runner's state; called only by
:mod:`orchestrator.run.runner`.
"""

from __future__ import annotations

import heapq
import json
import time
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.model import StepState
from orchestrator.plan import expand
from orchestrator.plan.graph import ENTER, EXIT, LOOP, LOOP_END, Node
from orchestrator.plan.resolve import NodeData, ResolveError
from orchestrator.run import callretry, daemons, lifecycle, locks, outcome, recorded, suspend
from orchestrator.spec import expr, placeholders


def halted(r: Any, node: Node, admit: bool = True) -> bool:
    """No new work may start here: a stop or the deadline (not for the onExit handler), or a
    failed task of an enclosing DAG with failFast (Argo's default). A node that was already
    ready when that task failed still starts (``admit``): Argo has no default parallelism limit,
    so it had started it — ``-j`` limits concurrency, never which steps run."""
    if r.stop_reason and not node.handler:
        return True
    if not r.scope_failed or (admit and node.id in r.admitted):
        return False
    for s in r.scopes(node):
        if not s and node.handler:
            continue
        t = r.graph.nodes[s].template if s else r.graph.root_template
        if s in r.scope_failed and t.fail_fast and (t.dag is not None or t.steps is not None):
            return True
    return False


def scope_failure(r: Any, nid: str) -> None:
    """Node ``nid`` ended FAILED or OMITTED. If it is a target task of its DAG (no task of the
    DAG depends on it) and ``continueOn`` does not accept it, the DAG has failed — Argo's
    failFast decides there, on the target tasks' branches — and no new task of it starts;
    everything ready at this moment is admitted (Argo schedules it in the same pass)."""
    node = r.graph.nodes[nid]
    t = r.graph.nodes[node.scope].template if node.scope else r.graph.root_template
    every = t.steps is not None and t.fail_fast  # a steps template's failFast: any of its steps
    if node.scope in r.scope_failed or (not every and any(
            r.graph.nodes[s].scope == node.scope and not r.graph.nodes[s].hook_of
            for s in r.graph.succ[nid])):
        return
    if r.ctx.data[nid].state == StepState.FAILED and handled_here(r, nid):
        return
    r.scope_failed.add(node.scope)
    # What Argo had started by now: every ready node, unless a parallelism limit held it back.
    free = lambda n: not r.graph.spec.parallelism and all(  # noqa: E731
        (r.graph.nodes[s].template if s else r.graph.root_template).parallelism is None
        for s in r.scopes(r.graph.nodes[n]))
    r.admitted.update(n for _o, n in r.ready if free(n))
    r.admitted.update(n for _o, n in r.launchable if free(n))


def continues(r: Any, node: Node, kind: str = "") -> bool:
    """The call's ``continueOn`` accepts this failure (``failed`` / ``error``); a lifecycle hook's
    ``Failed`` is ignored (Argo: only a hook that ends ``Error`` fails its steps/dag template)."""
    kind = kind or r.fail_kinds.get(node.id, "failed")
    if node.trigger and kind != "error":
        return True
    if node.call is None or not node.call.continue_on:
        return False
    return kind in node.call.continue_on


def advance(r: Any, nid: str) -> None:
    node = r.graph.nodes[nid]
    d = r.ctx.data
    if node.kind in (EXIT, LOOP_END):
        enter_state = d[node.partner].state
        if enter_state in (StepState.SKIPPED, StepState.OMITTED):
            return r.settle(nid, enter_state)
        if enter_state == StepState.FAILED:
            failed = True
        elif node.kind == LOOP_END:
            # the group fails when an item failed, handled or not (a depends on it sees Failed)
            failed = any(d[i].state == StepState.FAILED for i in d[nid].instances or ())
        else:
            failed = any(node.partner in r.scopes(r.graph.nodes[f]) and not handled(r, f, node.partner)
                         for f in r.failures)
        if failed and node.kind == EXIT and node.template.retry is not None and callretry.again(r, nid):
            return None  # the whole call runs again (Argo's retryStrategy on a steps/dag template)
        if failed:
            r.fail_kinds[nid] = r.fail_kinds.get(node.partner, "failed")
        elif node.kind == EXIT and node.partner in r.memo_hits:  # outputs came from the memoization cache
            return r.settle(nid, StepState.SUCCEEDED, "memoized")
        elif node.kind == EXIT:
            try:
                r.ctx.composite_outputs(node)
            except ResolveError as exc:
                r.fail_kinds[nid] = "error"
                r.failures.append(nid)
                return r.settle(nid, StepState.FAILED, str(exc))
            memo_put(r, node)
        if node.kind == EXIT:
            locks.release(r, r.graph.nodes[node.partner])  # a steps/dag call's mutex: held until it ends
            daemons.end_scope(r, node.partner)  # and the daemons it started
        return r.settle(nid, StepState.FAILED if failed else StepState.SUCCEEDED)
    if node.trigger and nid not in r.hooks_fired:  # a lifecycle hook: waits for its expression
        return lifecycle.arm(r, nid)
    if r.memo_hits and any(s in r.memo_hits for s in r.scopes(node)):
        return r.settle(nid, StepState.SKIPPED, "the call's outputs were memoized")
    if node.scope and d[node.scope].state in (StepState.SKIPPED, StepState.OMITTED, StepState.FAILED):
        return r.settle(nid, StepState.OMITTED if d[node.scope].state == StepState.FAILED
                           else d[node.scope].state)
    preds = [p for p in r.preds[nid] if p != node.scope]
    try:
        if not (node.hook_of or node.trigger) and not outside_target(r, node):
            return r.settle(nid, StepState.SKIPPED, "not needed for the DAG's target")
        if node.hook_of or node.trigger:  # an exit hook runs whatever the call's outcome, unless it never ran
            if node.hook_of and d[node.hook_of].state in (StepState.SKIPPED, StepState.OMITTED):
                return r.settle(nid, d[node.hook_of].state)
            if r.stop_reason and not node.handler:
                return r.settle(nid, StepState.OMITTED)
        elif not r.ctx.depends_ok(node, preds, r.continues) or halted(r, node):
            return r.settle(nid, StepState.OMITTED)
        if node.kind == LOOP:  # ``when`` and inputs belong to each instance
            return start_loop(r, node)
        if not r.ctx.when(node):
            return r.settle(nid, StepState.SKIPPED, "when condition is false")
        d[nid].params, d[nid].in_artifacts = r.ctx.call_inputs(node)
        if node.kind == ENTER:
            callretry.started(r, node)
            if node.template.mutexes and not locks.take(r, node):  # held by another call or execution
                r.record(nid, StepState.PENDING, "waiting for its mutex")
                heapq.heappush(r.delayed, (time.monotonic() + locks.POLL, node.order, nid))
                return None
            if node.template.memoize is not None and r.cache and memo_hit(r, node):
                return r.settle(nid, StepState.SUCCEEDED, "memoized: its steps do not run")
            if node.deferred:
                grow(r, nid, *expand.expand_deferred(r.graph, node), node.partner)
            return r.settle(nid, StepState.SUCCEEDED)
        if node.template.suspend is not None:  # waits for its duration or a resume
            return suspend.start(r, node)
    except (ResolveError, OrchestratorError) as exc:
        return r.fail(nid, str(exc))
    if not r.try_recorded(node):
        heapq.heappush(r.launchable, (node.order, nid))


def memo_hit(r: Any, node: Node) -> bool:
    """A memoized steps/dag call (ENTER ``node``): on a hit its EXIT gets the recorded outputs and
    nothing inside it runs (Argo's memoize on any template)."""
    _key, entry = recorded.memo_entry(r, node)
    if entry is None:
        return False
    r.memo_hits.add(node.id)
    r.ctx.data[node.partner].out_params = dict(json.loads(entry[2]).get("parameters") or {})
    return True


def memo_put(r: Any, node: Node) -> None:
    """The EXIT ``node`` of a memoized call that ran: its outputs are recorded under the key."""
    enter = r.graph.nodes[node.partner]
    key = r.keys.get(enter.id, ("", "", ""))[0]
    if enter.template.memoize is not None and key:
        r.dirty_cache.append((key, node.id, json.dumps({"parameters": r.ctx.data[node.id].out_params,
                                                        "artifacts": {}, "digests": {}, "urls": {}})))


def outside_target(r: Any, node: Node) -> bool:
    """False when ``node`` is a task of a DAG with ``target`` that the targets do not need (Argo runs
    only the target tasks and what they depend on). The target is resolved in the DAG's scope
    the first time one of its tasks is ready; a name that is no task fails that task."""
    t = r.graph.nodes[node.scope].template if node.scope else r.graph.root_template
    if node.call is None or t.dag is None or not t.dag_target:
        return True
    if node.scope not in r.dag_targets:
        names = placeholders.substitute(t.dag_target, lambda ex: r.ctx.caller(node, ex)).split()
        tasks = {c.name: c for c in t.dag}
        unknown = [n for n in names if n not in tasks]
        if unknown:
            raise ResolveError(f"dag.target {unknown[0]!r} is not a task of template {t.name!r}")
        needed: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name in needed:
                continue
            needed.add(name)
            call = tasks[name]
            todo.extend(call.dependencies)
            if call.depends:
                todo.extend(ref for ref, _res in expr.depends_refs(expr.parse(call.depends)) if ref in tasks)
        r.dag_targets[node.scope] = needed
    return node.call.name in r.dag_targets[node.scope]


def start_loop(r: Any, node: Node) -> None:
    """A withParam/withSequence call starts: its items decide its instances (none: Skipped)."""
    items = expand.loop_items(r.ctx, node)
    if not items:
        return r.settle(node.id, StepState.SKIPPED, "the loop has no items")
    new, tails = expand.expand_loop(r.graph, node, items)
    r.ctx.data[node.id].instances = r.ctx.data[node.partner].instances = list(tails)
    hooks = [h for t in tails for h in r.graph.after.get(t, ())]  # each item's lifecycle hooks
    grow(r, node.id, new, tails + hooks, node.partner)
    r.settle(node.id, StepState.SUCCEEDED)


def grow(r: Any, nid: str, new: list[str], tails: list[str], waiter: str) -> None:
    """Nodes were added to the graph at run time (before ``nid`` settles): track them."""
    expand.connect(r.graph, tails, waiter)
    r.waiting[waiter] += len([t for t in tails if t != nid])
    for n in new:
        r.ctx.data[n] = NodeData()
        r.waiting[n] = len(r.graph.pred[n])
        r.record(n, StepState.PENDING)


def handled_here(r: Any, nid: str) -> bool:
    """The failure of ``nid`` is accepted by its own call (``continueOn``) or a sibling's ``depends``."""
    node = r.graph.nodes[nid]
    if continues(r, node):
        return True
    return _depended_on(r, node)


def _depended_on(r: Any, node: Node) -> bool:
    """A successor's ``depends`` names this node's failure (through a run-time loop's end, too)."""
    name = node.call.name if node.call else node.id
    ids = [node.id] + [s for s in r.graph.succ[node.id] if r.graph.nodes[s].kind == LOOP_END]
    for succ in (x for i in ids for x in r.graph.succ[i]):
        call = r.graph.nodes[succ].call
        if call and call.depends and (name, ) in outcome.failure_refs(call.depends):
            return True
    return False


def handled(r: Any, nid: str, within: str = "") -> bool:
    """A failure is handled when a successor's ``depends`` asks for it explicitly, for the step
    itself or for an enclosing steps/dag call (``depends: "train.Failed"``). With ``within``
    (an ENTER id) only handlers inside that call count."""
    node = r.graph.nodes[nid]
    scopes = [s for s in r.scopes(node) if s]
    if within:
        scopes = scopes[:scopes.index(within)] if within in scopes else scopes
    chain = [node] + [r.graph.nodes[r.graph.nodes[s].partner] for s in scopes]
    for n in chain:
        if continues(r, n, r.fail_kinds.get(nid, "failed")) or _depended_on(r, n):
            return True
    return False


def failure_list(r: Any) -> list[dict[str, str]]:
    """``{{workflow.failures}}``: the failed steps, as Argo lists them for an exit handler."""
    return [{"displayName": f, "message": r.messages.get(f, "")[:500], "templateName":
             r.graph.nodes[f].template.name, "phase": "Failed" if r.fail_kinds.get(f) == "failed" else "Error",
             "podName": f, "finishedAt": ""} for f in r.failures]
