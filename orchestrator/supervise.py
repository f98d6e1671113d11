"""Supervision of a running execution: heartbeats, stop requests, deadlines, killing steps.

Owns: the heartbeat thread (its own store connection, so a busy main loop is not taken for a dead
runner; it notices when the reaper ended the execution), polling ``targetStatus`` for a stop
(RUNNING -> STOPPING, every step's process tree killed), workflow and template deadlines, and the
kill grace. Functions over the runner's state; called only by :mod:`orchestrator.runner`.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from orchestrator import reaper
from orchestrator.errors import OrchestratorError, StoreError
from orchestrator.model import Status

KILL_GRACE = float(os.environ.get("ORCHESTRATOR_KILL_GRACE", "3"))


def start_heartbeat(r: Any) -> None:
    """Heartbeats come from their own thread and connection, so a main loop busy copying a
    large artifact is not mistaken for a dead runner; a frozen process stops both."""
    def beat() -> None:
        try:
            store = r.store.clone()
        except StoreError as exc:
            r.lost = f"store not writable for heartbeats: {exc.message}"
            return
        try:
            while not r.beat_stop.wait(reaper.HEARTBEAT_INTERVAL):
                if store.get_execution(r.rg, r.ex.id).status.terminal:
                    r.lost = "the execution was ended by the reaper while this runner was unresponsive"
                    return
                store.heartbeat(r.rg, r.ex.id, os.getpid())
        except (StoreError, OrchestratorError) as exc:
            r.lost = f"heartbeat failed: {exc}"
        finally:
            store.close()

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()


def kill_all(r: Any, reason: str, grace: float = KILL_GRACE) -> None:
    for run in r.running.values():
        run.proc.kill(reason, grace=grace)


def check_stop(r: Any) -> None:
    if r.stopped or r.in_handler:
        return
    if r.store.target_status(r.rg, r.ex.id) != "STOPPED":
        return
    r.stopped = True
    r.stop_reason = r.stop_reason or "stopped by request"
    r.flush()
    r.store.set_status(r.rg, r.ex.id, Status.STOPPING)
    kill_all(r, r.stop_reason)


def check_deadlines(r: Any, now: float) -> None:
    if r.deadline and now >= r.deadline and not r.stop_reason and not r.in_handler:
        r.stop_reason = (f"workflow activeDeadlineSeconds ({r.graph.spec.active_deadline_seconds:g} s) "
                         "exceeded")
        kill_all(r, r.stop_reason)
    for nid, run in r.running.items():
        if run.deadline and now >= run.deadline and not run.proc.killed:
            t = r.graph.nodes[nid].template
            which = "activeDeadlineSeconds" if t.active_deadline_seconds else "timeout"
            run.proc.kill(f"template {which} ({(t.active_deadline_seconds or t.timeout):g} s) exceeded",
                          grace=KILL_GRACE)
