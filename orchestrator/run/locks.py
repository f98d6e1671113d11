"""Argo ``synchronization`` mutexes across the executions of one store.

Owns: taking and releasing the store's locks (``sync_holders``) for a runner: a workflow-level
mutex is taken before any step starts (the execution waits, RUNNING, polling every 0.2 s; a stop
request still ends it) and held until it ends; a template-level mutex is taken when a step is
about to start (all of the template's mutexes or none; otherwise the step waits in the queue)
and released when that attempt ends. A holder whose execution has ended — a reaped runner's too
— is dropped by the next taker. Functions over the runner's state.
"""

from __future__ import annotations

import time
from typing import Any

from orchestrator.plan.graph import Node

POLL = 0.2


def _key(name: str) -> str:
    return f"mutex/{name}"


def wait_for_workflow(r: Any, check_stop: Any) -> None:
    """Take the workflow's mutexes, waiting as long as other executions hold them."""
    names = r.graph.spec.mutexes
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
    names = node.template.mutexes
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
    if r.graph.spec.mutexes or any(n.template.mutexes for n in r.graph.nodes.values()):
        r.store.unlock(r.rg, r.ex.id, None)
