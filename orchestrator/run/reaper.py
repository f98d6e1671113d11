"""The reaper: executions whose runner is gone end DEAD ("runner lost"), their orphans killed.

Owns: deciding that a runner is gone (its recorded pid no longer exists on this machine, or its
heartbeat is older than the timeout), killing the steps it left behind (by the execution's
step token, which also finds ``setsid`` escapees), and the terminal status: STOPPED when a stop
had been requested, DEAD otherwise; the same for a sweep whose process is gone (by its pid).
Runs at every CLI start and periodically inside runners.
"""

from __future__ import annotations

import os
import time

from orchestrator.errors import IllegalTransition, StoreError
from orchestrator.model import Status, StepState
from orchestrator.run.steps import kill_tagged
from orchestrator.store import Store

HEARTBEAT_INTERVAL = float(os.environ.get("ORCHESTRATOR_HEARTBEAT_INTERVAL", "5"))
HEARTBEAT_TIMEOUT = float(os.environ.get("ORCHESTRATOR_HEARTBEAT_TIMEOUT", "30"))


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not a runner
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


def reap(store: Store, *, timeout: float = HEARTBEAT_TIMEOUT, now: float | None = None,
         skip: str = "") -> list[str]:
    """Mark executions with a lost runner terminal; returns their ids. Never raises StoreError."""
    now = time.time() if now is None else now
    reaped: list[str] = []
    try:
        for rg in store.resource_groups():
            for eid, status, beat, pid, target in store.active_executions(rg):
                if eid == skip:
                    continue
                gone = (pid is not None and pid != os.getpid() and not pid_alive(pid)) or now - beat > timeout
                if not gone:
                    continue
                kill_tagged(eid + "-", prefix=True)
                _remove_containers(store, rg, eid)
                why = (f"runner lost (pid {pid} is gone)" if pid and not pid_alive(pid)
                       else f"runner lost (no heartbeat for {now - beat:.0f} s)")
                final = Status.STOPPED if target == "STOPPED" else Status.DEAD
                try:
                    if final == Status.STOPPED and status == Status.RUNNING:
                        store.set_status(rg, eid, Status.STOPPING)
                    store.set_status(rg, eid, final, why)
                    store.close_open_steps(rg, eid, StepState.STOPPED if final == Status.STOPPED
                                           else StepState.FAILED, why)
                    reaped.append(eid)
                except IllegalTransition:
                    pass
        _reap_sweeps(store)
    except StoreError:
        pass
    return reaped


def _reap_sweeps(store: Store) -> None:
    """Sweeps whose process is gone (kill -9, a crash) end DEAD — STOPPED when a stop had been
    asked for — saying so and how to go on, instead of showing RUNNING for ever (their trials'
    runners are reaped above). ``sweeps resume`` continues them as before."""
    from orchestrator.store.sweep_records import SweepRecords

    if not hasattr(store, "db"):
        return
    records = SweepRecords(store)  # type: ignore[arg-type]
    for rg, sweep_id, pid, target in records.lost():
        if pid == os.getpid() or pid_alive(pid):
            continue
        stopped = target == "STOPPED"
        records.end_lost(rg, sweep_id, pid, "STOPPED" if stopped else "DEAD",
                         f"sweep process lost (pid {pid} is gone)"
                         + ("" if stopped else f"; continue it: orchestrator sweeps resume {sweep_id}"))


def _remove_containers(store: Store, rg: str, eid: str) -> None:
    """The containers the execution's steps ran in (container executor), if any."""
    from orchestrator.run.container_reap import reap_execution

    try:
        reap_execution(store.get_execution(rg, eid).workdir, eid)
    except Exception:  # noqa: BLE001, S110 - best effort: the status below is what matters
        pass
