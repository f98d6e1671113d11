"""Argo's ``retryStrategy`` on a steps/dag template: the whole call runs again.

Owns: the decision when a steps/dag call with a ``retryStrategy`` has failed (its EXIT is ready
with an unhandled failure inside): ``retryPolicy`` (a failure inside that is an error counts as
``Error``, else ``Failed``), ``limit`` (none: unlimited, as in Argo, bounded as a leaf's retry by
:mod:`orchestrator.run.retrybound`), ``expression`` (with
``lastRetry.*`` of the failed attempt: status, message, duration, exitCode ``-1`` as Argo gives a
node without one) and ``backoff`` (duration, factor, cap, maxDuration); and the reset that makes the
next attempt a fresh run of every step inside it: their states, retries, cache keys and failures
go, nodes a loop or a recursive call added at run time are removed (they are compiled again when
the call starts again), mutexes and daemons of the call end. A stop, the deadline or a failFast
halt of an enclosing template cancels the retry (the call then ends Failed/Omitted). Its exit and
lifecycle hooks run once, around all attempts. The entrypoint (no node of the graph) is retried
the same way when the execution is idle with it failed (:func:`root_again`), before the workflow's
hooks and its exit handler. Functions over the runner's state; called by
:mod:`orchestrator.run.flow` and the runner.
"""

from __future__ import annotations

import heapq
import time
from typing import Any

from orchestrator.model import StepState
from orchestrator.plan.graph import ENTER, LEAF, Node
from orchestrator.plan.resolve import NodeData
from orchestrator.run import daemons, limits, locks, retrybound, supervise


def again(r: Any, exit_id: str) -> bool:
    """EXIT ``exit_id`` found a failure inside its call; True when the call runs again (its EXIT
    then waits), False when the failure is final (the reason is left in the EXIT's message)."""
    x = r.graph.nodes[exit_id]
    e = r.graph.nodes[x.partner]
    if e.template.retry is None or r.stop_reason or r.halted(e, admit=False):
        return False
    inner = [n for n in r.graph.nodes if e.id in r.scopes(r.graph.nodes[n])]
    inside = set(inner)
    mine = [f for f in r.failures if f in inside and not r.handled(f, e.id)]
    if not mine:
        return False
    d = r.ctx.data[e.id]
    attempt = r.attempts.get(e.id, 1)
    began = r.first_start.setdefault(e.id, time.monotonic() - max(0.0, time.time() - (d.started or time.time())))
    delay, kind, message = _decide(r, e, d, attempt, began, mine)
    if delay is None:
        return False
    locks.release(r, e)
    daemons.end_scope(r, e.id)
    _reset(r, [*inner, x.id], inside)
    r.scope_failed.discard(e.id)
    r.dag_targets.pop(e.id, None)
    r.waiting[e.id] = 0
    r.ctx.data[e.id] = NodeData(attempt=attempt + 1, last_retry=dict(d.last_retry))
    r.attempts[e.id] = attempt + 1
    r.retrying[e.id] = exit_id  # its failure stands until the next attempt starts (a stop ends it so)
    r.failures.append(exit_id)
    r.fail_kinds[exit_id] = kind
    r.messages[exit_id] = f"the call {e.id!r} failed and was to run again: {message}"  # if that never comes
    r.record(e.id, StepState.PENDING, f"attempt {attempt} of the call failed: {message[:500]}; "
             f"running it again in {delay:g} s")
    heapq.heappush(r.delayed, (time.monotonic() + delay, e.order, e.id))
    return True


def root_again(r: Any) -> bool:
    """The execution is idle with its entrypoint (a steps/dag template with a ``retryStrategy``)
    failed: True while it runs again or waits for its backoff (the runner goes on), False when
    that failure is final (or nothing failed, or a stop or the deadline came)."""
    root = r.graph.root_template
    if root.retry is None or root.is_leaf or r.in_handler:
        return False
    if r.stop_reason:
        r.root_retry_at = None  # the failures stand: the execution ends with them
        return False
    now = time.monotonic()
    if r.root_retry_at is not None:
        if now < r.root_retry_at:  # the backoff: keep watching for a stop and the deadline
            time.sleep(min(0.2, r.root_retry_at - now))
            supervise.check_stop(r)
            supervise.check_deadlines(r, time.monotonic())
            return True
        r.root_retry_at = None
        inner = [n for n in r.graph.nodes if _main(r, n)]
        daemons.end_scope(r, "")
        _reset(r, inner, set(inner))
        r.scope_failed.discard("")
        r.dag_targets.pop("", None)
        for n in inner:  # its first steps start again
            if n in r.graph.nodes and r.waiting[n] == 0:
                heapq.heappush(r.ready, (r.graph.nodes[n].order, n))
        return True
    mine = [f for f in r.failures if _main(r, f) and not r.handled(f)]
    if not mine:
        return False
    attempt = r.root_attempt
    node = Node(ROOT, ENTER, root, None, "")
    d = NodeData(params=dict(r.ctx.params), started=r.ctx.t0)
    delay, _kind, _message = _decide(r, node, d, attempt, r.t0, mine)
    if delay is None:
        return False
    r.root_attempt = attempt + 1
    r.root_retry_at = now + delay
    return True


ROOT = "\x00entrypoint"  # the entrypoint call, for its retryStrategy's expression (no node of the graph)


def _main(r: Any, nid: str) -> bool:
    """A node of the entrypoint's run (not the exit handler, not a workflow-level lifecycle hook)."""
    node = r.graph.nodes[nid]
    if node.handler:
        return False
    hooks = {n for n in (nid, node.partner, *r.scopes(node)) if n and n in r.graph.nodes
             and r.graph.nodes[n].trigger and not r.graph.nodes[n].hook_of and not r.graph.nodes[n].scope}
    return not hooks


def _decide(r: Any, node: Node, d: NodeData, attempt: int, began: float, mine: list[str]) -> tuple[float | None, str, str]:
    """(seconds until the next attempt or None, the failure's kind, its message) after attempt
    ``attempt`` of ``node``'s call failed with the failures ``mine``; a final failure's message
    says how often the call ran."""
    kind = "error" if any(r.fail_kinds.get(f) == "error" for f in mine) else "failed"
    message = r.messages.get(mine[0], f"step {mine[0]!r} failed")
    d.last_retry = {"exitCode": "-1", "status": "Failed" if kind == "failed" else "Error",
                    "duration": f"{max(0.0, time.time() - (d.started or time.time())):.0f}", "message": message[:1000]}
    d.attempt = attempt
    own = node.id not in r.ctx.data
    if own:  # the entrypoint: its data only while its limit and expression are evaluated
        r.ctx.data[node.id] = d
    try:
        strategy, note = limits.retry_strategy(r, node)
        assert strategy is not None
        delay, bound = retrybound.next_delay(strategy, attempt, "failure" if kind == "failed" else "error",
                                             time.monotonic() - began)
        note = bound or note
        if delay is not None and strategy.expression:
            ok, why = limits.retry_expression(r, node, strategy.expression, kind, None, None)
            delay, note = (delay, note) if ok else (None, why)
    finally:
        if own:
            r.ctx.data.pop(node.id, None)
    if delay is None:
        what = "the entrypoint" if node.id == ROOT else f"its steps/dag call {node.id!r}"
        r.messages[mine[0]] = message + (f"; {what} ran {attempt} times" if attempt > 1 else "") \
            + (f"; {note}" if note else "")
    elif note:
        message = f"{message[:200]} ({note})"
    return delay, kind, message


def started(r: Any, node: Node) -> None:
    """ENTER ``node`` starts again: the failure that held its call's place is gone."""
    exit_id = r.retrying.pop(node.id, None)
    if exit_id is not None and exit_id in r.failures:
        r.failures.remove(exit_id)
        r.fail_kinds.pop(exit_id, None)
        r.messages.pop(exit_id, None)


def _reset(r: Any, inner: list[str], inside: set[str]) -> None:
    """The nodes ``inner`` (a call's steps and its EXIT, or the entrypoint's run) as before their
    first attempt; those a loop or a recursive call added at run time are removed."""
    g = r.graph
    dynamic = [n for n in inner if n not in r.static_nodes]  # a loop's items, a recursive call's steps
    for m in dynamic:
        for p in g.pred[m]:
            if p in g.succ and m in g.succ[p]:
                g.succ[p].remove(m)
        for s in g.succ[m]:
            if s in g.pred and m in g.pred[s]:
                g.pred[s].remove(m)
    for m in dynamic:
        if g.nodes[m].kind == LEAF:  # an item coming back goes on numbering its attempts (kept apart)
            r.attempt_base[m] = r.attempts.get(m, 0)
        for table in (g.nodes, g.succ, g.pred, g.inner, g.after, r.waiting, r.ctx.data, r.dirty, r.messages,
                      r.keys, r.log_paths, r.first_start, r.fail_kinds, r.dag_targets, r.armed):
            table.pop(m, None)
        for group in (r.scope_failed, r.admitted, r.hooks_fired, r.memo_hits):
            group.discard(m)
    if dynamic:  # their rows: not steps of the next attempt (their attempt rows stay, the history)
        r.drain()  # every batch handed over before is committed first (none rewrites them after)
        r.store.drop_steps(r.rg, r.ex.id, dynamic)
    g._dag = None
    # Argo runs every step of the call again: no cache hit, no memoized output stands in for it.
    r.force.update(inner)
    r.retried_inner.update(inner)
    r.failures[:] = [f for f in r.failures if f not in inside]
    for n in (n for n in inner if n in r.static_nodes):
        r.ctx.data[n] = NodeData()
        r.waiting[n] = len(g.pred[n])
        if g.nodes[n].kind == LEAF:  # its attempts go on being numbered (logs), its retries count anew
            r.attempt_base[n] = r.attempts.get(n, 0)
        else:
            r.attempts.pop(n, None)
        for table in (r.first_start, r.fail_kinds, r.keys, r.dag_targets, r.armed):
            table.pop(n, None)
        for group in (r.scope_failed, r.admitted, r.hooks_fired, r.memo_hits):
            group.discard(n)
        r.record(n, StepState.PENDING)
