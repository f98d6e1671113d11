"""Store records of sweeps: the ``sweeps`` and ``sweep_trials`` tables.

Owns: every SQL statement on those two tables (plus rewriting a trial execution's status message
when a policy stopped it), scoped by resource group like every other read. A sweep row keeps the
canonical ``Sweep`` document, the seed the sampler uses, its status (the AI Core vocabulary:
PENDING, RUNNING, COMPLETED, STOPPED, DEAD), the process that runs it and its heartbeat. A trial
is an execution: ``sweep_trials`` links the execution to its trial index, the parameters the
sampler gave it, the primary-metric reports seen so far, its objective and the policy's message.
A trial index may have several executions (a run interrupted by a crash is run again on resume);
the newest is current. Wraps a :class:`~orchestrator.store.sqlite.SqliteStore` (its connection and
transactions); imports nothing above the store. :func:`savepoint` lets a sweep write its next
trial inside another trial's end transaction, undone alone when it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import NotFound
from orchestrator.store import now_iso
from orchestrator.store.sqlite import SqliteStore

OPEN = ("PENDING", "RUNNING")


@contextmanager
def savepoint(store: SqliteStore) -> Iterator[None]:
    """Within ``store``'s transaction (opened here when there is none): the block's writes are
    rolled back, alone, when it raises; the enclosing transaction goes on."""
    with store.transaction() as db:
        db.execute("SAVEPOINT sweep_part")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK TO sweep_part")
            db.execute("RELEASE sweep_part")
            raise
        db.execute("RELEASE sweep_part")


@dataclass(frozen=True)
class SweepRow:
    id: str
    rg: str
    name: str
    document: dict[str, Any]
    seed: int
    configuration_id: str
    status: str
    status_message: str
    target_status: str
    created_at: str
    modified_at: str
    start_time: str | None
    completion_time: str | None
    owner_pid: int | None
    heartbeat_at: float | None
    best_execution_id: str | None
    best_value: float | None
    model_version: str
    source: str = ""  # "application:path" of a git-synced Sweep, '' for one created by run or REST


@dataclass(frozen=True)
class TrialRow:
    sweep_id: str
    trial: int
    execution_id: str
    parameters: dict[str, Any]
    objective: float | None
    reports: list[float]
    message: str
    started_at: float | None
    finished_at: float | None
    status: str  # the execution's status
    status_message: str


_SWEEP_COLS = ("id, rg, name, document, seed, configuration_id, status, status_message, target_status, created_at, "
               "modified_at, start_time, completion_time, owner_pid, heartbeat_at, best_execution_id, best_value, "
               "model_version, source")
_TRIAL_COLS = ("t.sweep_id, t.trial, t.execution_id, t.parameters, t.objective, t.reports, t.message, t.started_at, "
               "t.finished_at, e.status, COALESCE(e.status_message, '')")


def _sweep(r: Any) -> SweepRow:
    return SweepRow(r[0], r[1], r[2], json.loads(r[3]), int(r[4]), *r[5:])


def _trial(r: Any) -> TrialRow:
    return TrialRow(r[0], int(r[1]), r[2], json.loads(r[3]), r[4], json.loads(r[5]), r[6], r[7], r[8], r[9], r[10])


class SweepRecords:
    """Sweeps and their trials in one store."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    # ------------------------------------------------------------------ sweeps
    def create(self, rg: str, name: str, document: dict[str, Any], seed: int, configuration_id: str,
               source: str = "") -> SweepRow:
        sid = secrets.token_hex(8)
        now = now_iso()
        with self.store.transaction() as db:
            db.execute(f"INSERT INTO sweeps({_SWEEP_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (sid, rg, name, json.dumps(document, sort_keys=True), seed, configuration_id, "PENDING", "",
                        "COMPLETED", now, now, None, None, None, None, None, None, "", source))
        return self.get(rg, sid)

    def get(self, rg: str, sweep_id: str) -> SweepRow:
        r = self.store.db.execute(f"SELECT {_SWEEP_COLS} FROM sweeps WHERE rg=? AND id=?", (rg, sweep_id)).fetchone()
        if r is None:
            raise NotFound(f"sweep {sweep_id!r} not found")
        return _sweep(r)

    def list(self, rg: str, *, limit: int = 1000, offset: int = 0) -> list[SweepRow]:
        rows = self.store.db.execute(f"SELECT {_SWEEP_COLS} FROM sweeps WHERE rg=? ORDER BY created_at DESC, id "
                                     "LIMIT ? OFFSET ?", (rg, limit, offset)).fetchall()
        return [_sweep(r) for r in rows]

    def count(self, rg: str) -> int:
        return int(self.store.db.execute("SELECT COUNT(*) FROM sweeps WHERE rg=?", (rg,)).fetchone()[0])

    def ids_with_prefix(self, rg: str, prefix: str) -> list[str]:
        rows = self.store.db.execute("SELECT id FROM sweeps WHERE rg=? AND id LIKE ? ESCAPE '\\' LIMIT 11",
                                     (rg, prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"))
        return [r[0] for r in rows]

    def claim(self, rg: str, sweep_id: str) -> None:
        """This process runs the sweep from now on (RUNNING, owner pid, heartbeat)."""
        now = now_iso()
        with self.store.transaction() as db:
            db.execute("""UPDATE sweeps SET status='RUNNING', status_message='', owner_pid=?, heartbeat_at=?,
                          start_time=COALESCE(start_time, ?), completion_time=NULL, modified_at=?,
                          target_status='COMPLETED' WHERE rg=? AND id=?""",
                       (os.getpid(), time.time(), now, now, rg, sweep_id))

    def pending(self, rg: str, sweep_id: str) -> None:
        """Waiting for a (new) process to run it."""
        with self.store.transaction() as db:
            db.execute("""UPDATE sweeps SET status='PENDING', status_message='', target_status='COMPLETED',
                          owner_pid=NULL, modified_at=? WHERE rg=? AND id=?""", (now_iso(), rg, sweep_id))

    def heartbeat(self, rg: str, sweep_id: str) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE sweeps SET heartbeat_at=? WHERE rg=? AND id=?", (time.time(), rg, sweep_id))

    def finish(self, rg: str, sweep_id: str, status: str, message: str) -> None:
        now = now_iso()
        with self.store.transaction() as db:
            db.execute("""UPDATE sweeps SET status=?, status_message=?, completion_time=?, modified_at=?,
                          owner_pid=NULL WHERE rg=? AND id=?""", (status, message, now, now, rg, sweep_id))

    def lost(self) -> list[tuple[str, str, int, str]]:
        """Open sweeps owned by a process (``(rg, id, owner pid, target status)``): the reaper's candidates."""
        rows = self.store.db.execute("""SELECT rg, id, owner_pid, target_status FROM sweeps
                                        WHERE status IN ('PENDING', 'RUNNING') AND owner_pid IS NOT NULL""").fetchall()
        return [(r[0], r[1], int(r[2]), r[3]) for r in rows]

    def end_lost(self, rg: str, sweep_id: str, pid: int, status: str, message: str) -> bool:
        """End a sweep whose process ``pid`` is gone, unless another process claimed it meanwhile."""
        now = now_iso()
        with self.store.transaction() as db:
            cur = db.execute("""UPDATE sweeps SET status=?, status_message=?, completion_time=?, modified_at=?,
                                owner_pid=NULL WHERE rg=? AND id=? AND owner_pid=? AND status IN ('PENDING', 'RUNNING')""",
                             (status, message, now, now, rg, sweep_id, pid))
            return cur.rowcount == 1

    def request_stop(self, rg: str, sweep_id: str) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE sweeps SET target_status='STOPPED', modified_at=? WHERE rg=? AND id=?",
                       (now_iso(), rg, sweep_id))

    def set_best(self, rg: str, sweep_id: str, execution_id: str | None, value: float | None) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE sweeps SET best_execution_id=?, best_value=? WHERE rg=? AND id=?",
                       (execution_id, value, rg, sweep_id))

    def set_model_version(self, rg: str, sweep_id: str, ref: str) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE sweeps SET model_version=? WHERE rg=? AND id=?", (ref, rg, sweep_id))

    # ------------------------------------------------------------------ trials
    def add_trial(self, sweep_id: str, trial: int, execution_id: str, parameters: dict[str, Any]) -> None:
        with self.store.transaction() as db:
            db.execute("""INSERT INTO sweep_trials(sweep_id, trial, execution_id, parameters, started_at)
                          VALUES (?,?,?,?,?)""", (sweep_id, trial, execution_id, json.dumps(parameters), time.time()))

    def trial_ended(self, execution_id: str, reports: list[float], objective: float | None, message: str = "",
                    *, rg: str = "", stopped_message: str = "", best: tuple[str, float] | None = None) -> None:
        """Record a trial's end; ``stopped_message`` also becomes its execution's status message;
        ``best`` (an execution id and its objective), when given, becomes its sweep's best."""
        with self.store.transaction() as db:
            db.execute("""UPDATE sweep_trials SET finished_at=?, reports=?, objective=?, message=?
                          WHERE execution_id=?""", (time.time(), json.dumps(reports), objective, message, execution_id))
            if best is not None:
                db.execute("""UPDATE sweeps SET best_execution_id=?, best_value=?
                              WHERE rg=? AND id=(SELECT sweep_id FROM sweep_trials WHERE execution_id=?)""",
                           (best[0], best[1], rg, execution_id))
            if stopped_message:
                db.execute("UPDATE executions SET status_message=? WHERE rg=? AND id=? AND status='STOPPED'",
                           (stopped_message, rg, execution_id))

    def set_message(self, execution_id: str, message: str) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE sweep_trials SET message=? WHERE execution_id=?", (message, execution_id))

    def trials(self, rg: str, sweep_id: str) -> list[TrialRow]:
        """Every trial execution of the sweep (re-runs included), by trial index then creation."""
        rows = self.store.db.execute(
            f"""SELECT {_TRIAL_COLS} FROM sweep_trials t JOIN sweeps s ON s.id=t.sweep_id
                LEFT JOIN executions e ON e.id=t.execution_id
                WHERE s.rg=? AND t.sweep_id=? ORDER BY t.trial, t.rowid""", (rg, sweep_id)).fetchall()
        return [_trial(r) for r in rows]

    def execution_ids(self, rg: str, sweep_id: str) -> list[str]:
        self.get(rg, sweep_id)
        return [t.execution_id for t in self.trials(rg, sweep_id)]

    def sweep_of(self, rg: str, execution_id: str) -> tuple[str, int] | None:
        r = self.store.db.execute("""SELECT t.sweep_id, t.trial FROM sweep_trials t JOIN sweeps s ON s.id=t.sweep_id
                                     WHERE s.rg=? AND t.execution_id=?""", (rg, execution_id)).fetchone()
        return (r[0], int(r[1])) if r else None
