"""How a runner that cannot finish normally ends its execution, and says why.

Owns: :func:`give_up` — what ``Runner.run`` does with an exception that escaped its loop (the store
cannot be written, the execution was ended elsewhere while the runner was frozen, a full disk, a
bug): every step tree is killed synchronously first (no step may run on unrecorded), then the
reason is recorded once more: DEAD, or STOPPED for a stray Ctrl-C. A full disk frees the home's
reserve file before that write, and when the DEAD row is recorded the runner returns DEAD like
any failed execution; when even that row cannot be written the error says so (the CLI prints it
on stderr) instead of leaving "runner lost" as the only trace. Functions over the runner's
state; called only by :mod:`orchestrator.run.runner`.
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import StoreError
from orchestrator.model import Status, StepState
from orchestrator.run import diskfull, supervise


def give_up(r: Any, exc: BaseException) -> Status:
    """End the execution after ``exc``: returns DEAD when a full disk was recorded as the reason,
    re-raises ``exc`` otherwise (after recording what it could)."""
    final = Status.DEAD
    full = diskfull.no_space(exc) or r.lost.startswith(diskfull.PREFIX)
    if isinstance(exc, KeyboardInterrupt):  # only before the SIGINT handler is in place
        reason, final = supervise.INTERRUPTED, Status.STOPPED
    elif full:
        reason = r.lost if r.lost.startswith(diskfull.PREFIX) else diskfull.reason(exc)
    elif isinstance(exc, StoreError):
        reason = f"store failure: {exc.message}"
    else:
        reason = r.lost or f"runner failed: {exc}"
    supervise.kill_now(r, reason)
    if full:
        diskfull.release_reserve(r.objects.home)
    recorded = record(r, reason, final)
    if full:
        if recorded:
            return Status.DEAD
        raise diskfull.DiskFull(f"{reason}; execution {r.ex.id} could not be recorded as DEAD either "
                                "(the store is on the full disk)",
                                hint="free space, then any orchestrator command marks it DEAD") from exc
    raise exc


def record(r: Any, reason: str, final: Status) -> bool:
    """Best effort after a failure: the commit thread's queued batches first (they must not be
    dropped behind a terminal status), then every node's state as the runner knows it (a step it
    had started ends FAILED, or STOPPED) with the final status in one transaction — or, when that
    does not fit (a full disk), the final status alone — then no step left RUNNING or PENDING.
    Whether the final status was recorded."""
    try:
        r.drain()
    except Exception:  # noqa: BLE001, S110 - the store may be what failed; the status write is what matters
        pass
    closed = StepState.STOPPED if final == Status.STOPPED else StepState.FAILED
    for nid, d in r.ctx.data.items():
        if d.state == StepState.RUNNING:
            r.record(nid, closed, reason)
    r.dirty = dict.fromkeys(r.graph.nodes)  # batches the commit thread could not write are lost

    def status() -> None:
        if final == Status.STOPPED and r.store.get_execution(r.rg, r.ex.id).status == Status.RUNNING:
            r.store.set_status(r.rg, r.ex.id, Status.STOPPING)
        r.store.set_status(r.rg, r.ex.id, final, reason)

    try:
        with r.store.transaction():
            r.flush()
            status()
    except Exception:  # noqa: BLE001
        try:
            status()
        except Exception:  # noqa: BLE001
            return False
    try:
        r.store.close_open_steps(r.rg, r.ex.id, closed, reason)
    except Exception:  # noqa: BLE001, S110 - the status is recorded; open steps are closed by the next reap
        pass
    return True
