"""Argo ``synchronization`` mutexes across the executions of one store.

Owns: taking and releasing the store's locks (``sync_holders``) for a runner: a workflow-level
mutex (and one of a steps/dag entrypoint) is taken before any step starts (the execution waits, RUNNING, polling every 0.2 s; a stop
request still ends it) and held until it ends; a template-level mutex is taken when a step is
about to start (all of the template's mutexes or none; otherwise the step waits in the queue)
and released when that attempt ends; one of a steps/dag template is taken when its call starts (the
call waits) and released when the call ends. Names may hold placeholders of the template's scope. A holder whose execution has ended — a reaped runner's too
— is dropped by the next taker. Functions over the runner's state.
"""

from __future__ import annotations

import time
from typing import Any

from orchestrator.plan.graph import Node
from orchestrator.plan.resolve import ResolveError
from orchestrator.spec import placeholders

POLL = 0.2


def _key(name: str) -> str:
    return f"mutex/{name}"


def names_of(r: Any, node: Node | None) -> list[str]:
    """The mutex names of ``node``'s template (None: the workflow's, and the entrypoint's when it is a
    steps/dag template, which Argo holds for the whole run), placeholders resolved in its scope."""
    if node is None:
        root = r.graph.root_template
        raw = list(r.graph.spec.mutexes) + ([] if root.is_leaf else list(root.mutexes))
    else:
        raw = list(node.template.mutexes)
    out = []
    for n in raw:
        try:
            if "{{" not in n:
                out.append(n)
            elif node is None or not node.template.is_leaf:  # the workflow's scope / the call's
                own = {} if node is None else r.ctx.data[node.id].params  # a steps/dag call's own inputs
                out.append(placeholders.substitute(n, lambda ex, p=own: _value(r, p, ex)))
            else:
                out.append(r.ctx.declared_path(node, n))
        except ResolveError:
            out.append(n)  # validation checked its placeholders: keep the name as written
    return out


def _value(r: Any, params: dict[str, str], ex: str) -> str:
    parts = ex.split(".")
    if parts[:2] == ["inputs", "parameters"] and len(parts) == 3 and parts[2] in params:
        return params[parts[2]]
    return str(r.ctx.workflow(parts))


def wait_for_workflow(r: Any, check_stop: Any) -> None:
    """Take the workflow's mutexes, waiting as long as other executions hold them."""
    names = names_of(r, None)
    if not names:
        return
    while True:
        if all(r.store.try_lock(r.rg, _key(n), r.ex.id) for n in names):
            return
        r.store.unlock(r.rg, r.ex.id, "")
        check_stop(r)
        if r.stop_reason:
            return
        time.sleep(POLL)


def take(r: Any, node: Node) -> bool:
    """Take every mutex of ``node``'s template, or none (False: the step waits)."""
    names = names_of(r, node)
    if not names:
        return True
    if all(r.store.try_lock(r.rg, _key(n), r.ex.id, node.id) for n in names):
        return True
    r.store.unlock(r.rg, r.ex.id, node.id)
    return False


def release(r: Any, node: Node) -> None:
    if node.template.mutexes:
        r.store.unlock(r.rg, r.ex.id, node.id)


def release_all(r: Any) -> None:
    if r.graph.spec.mutexes or r.graph.root_template.mutexes or any(n.template.mutexes
                                                                     for n in r.graph.nodes.values()):
        r.store.unlock(r.rg, r.ex.id, None)
