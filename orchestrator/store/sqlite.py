"""SQLite implementation of the :class:`~orchestrator.store.Store` Protocol.

Owns: the database file, its pragmas (WAL, busy_timeout, foreign keys, synchronous=FULL unless
``ORCHESTRATOR_SYNC=normal``), ``PRAGMA user_version`` migrations, and every SQL statement.
Every write runs in ``BEGIN IMMEDIATE``; every read is scoped by resource group. sqlite errors
become :class:`~orchestrator.errors.StoreError` with the reason (disk full, read-only, locked).
The SQL of the other records lives in its ``*_records`` mixins (catalog, API, sync, metrics, ...).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from orchestrator.errors import Conflict, NotFound, StoreError
from orchestrator.model import (
    Attempt,
    Configuration,
    Execution,
    Status,
    StepRecord,
    StepState,
    check_transition,
)
from orchestrator.store import now_iso
from orchestrator.store.api_records import ApiRecords
from orchestrator.store.catalog_records import CatalogRecords
from orchestrator.store.codec import j as _j
from orchestrator.store.codec import pairs as _pairs
from orchestrator.store.experiment_records import ExperimentRecords
from orchestrator.store.lock_records import LockRecords
from orchestrator.store.resume_records import ResumeRecords
from orchestrator.store.metric_records import MetricRecords
from orchestrator.store.registry_records import RegistryRecords
from orchestrator.store.schema import MIGRATIONS
from orchestrator.store.sync_records import SyncRecords
from orchestrator.store.walindex import WalIndex


SPARES = 2  # connections a store keeps for spare() (a runner's commit and heartbeat threads)


class SqliteStore(ApiRecords, SyncRecords, MetricRecords, ExperimentRecords, RegistryRecords, LockRecords,
                  ResumeRecords, CatalogRecords):
    """One connection, used by one thread at a time (the runner's loop or a CLI command)."""

    def __init__(self, path: str, *, timeout: float = 30.0) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
            self.db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            mode = self._wal(timeout)
            if mode != "wal":
                raise StoreError(f"cannot enable WAL on {path} (got {mode})",
                                 hint="the store must be on a local filesystem")
            sync = "NORMAL" if os.environ.get("ORCHESTRATOR_SYNC", "").lower() == "normal" else "FULL"
            self.db.execute(f"PRAGMA synchronous={sync}")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        self._lock = threading.RLock()
        self._depth = 0
        self._writes = 0  # transactions this connection committed or tried (see version())
        self._wal = WalIndex(path)
        self._spares: list[SqliteStore] = []  # connections lent by spare() and given back, for reuse
        self._closed = False
        self._spare_lock = threading.Lock()

    def _wal(self, timeout: float) -> str:
        """Switch to WAL. On a brand-new file SQLite answers "locked" at once (ignoring
        busy_timeout) while another process is creating the same store: wait for it instead."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return str(self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close_open_steps(self, rg: str, execution_id: str, state: StepState, message: str) -> None:
        """After a reap: RUNNING steps get ``state``, PENDING ones OMITTED (nothing stays open)."""
        with self.transaction() as db:
            self._status(rg, execution_id)
            now = time.time()
            db.execute("UPDATE steps SET state=?, message=?, finished_at=? WHERE execution_id=? AND state='RUNNING'",
                       (state.value, message, now, execution_id))
            db.execute("UPDATE steps SET state='OMITTED' WHERE execution_id=? AND state='PENDING'", (execution_id,))

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(MIGRATIONS):
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            for i in range(version, len(MIGRATIONS)):
                for stmt in MIGRATIONS[i]:
                    self.db.execute(stmt)
            self.db.execute(f"PRAGMA user_version={len(MIGRATIONS)}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; nested use joins the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.db
                finally:
                    self._depth -= 1
                return
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path} is not writable: {exc}") from exc
            self._depth = 1
            self._writes += 1
            try:
                yield self.db
                self.db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreError(f"store write failed: {exc}",
                                 hint="check free disk space and permissions of the store") from exc
            except BaseException:
                self._rollback()
                raise
            finally:
                self._depth = 0

    def version(self) -> tuple[object, int]:
        """Changes a cached read must not survive: commits of any connection (the WAL-index header
        every commit rewrites, read without a system call; ``PRAGMA data_version`` where it cannot
        be read) and write transactions of this one."""
        header = self._wal.header()
        if header is not None:
            return header, self._writes
        return int(self.db.execute("PRAGMA data_version").fetchone()[0]), self._writes

    def _rollback(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _one(self, sql: str, args: Sequence[Any], what: str) -> sqlite3.Row | tuple[Any, ...]:
        row = self.db.execute(sql, args).fetchone()
        if row is None:
            raise NotFound(f"{what} not found")
        return row

    def _status(self, rg: str, execution_id: str) -> Status:
        """The execution's status; NotFound unless it exists in this resource group."""
        row = self._one("SELECT status FROM executions WHERE rg=? AND id=?", (rg, execution_id),
                        f"execution {execution_id!r}")
        return Status(row[0])

    def close(self) -> None:
        with self._spare_lock:
            self._closed = True
            spares, self._spares = self._spares, []
        for other in spares:
            other.close()
        self._wal.close()
        self.db.close()

    def clone(self) -> SqliteStore:
        """Another connection to the same file (for another thread)."""
        return SqliteStore(self.path)

    def spare(self) -> SqliteStore:
        """Another connection to the same file, for another thread, reused: one handed back with
        :meth:`give_back` when there is one (a runner's commit and heartbeat threads, run by
        runner after runner on the same service, open none), else a new one."""
        with self._spare_lock:
            if self._spares:
                return self._spares.pop()
        return self.clone()

    def give_back(self, other: SqliteStore) -> None:
        """Return a connection from :meth:`spare` (closed with this store). One with an open
        transaction, or one too many, is closed instead."""
        with self._spare_lock:
            if not self._closed and not other._depth and len(self._spares) < SPARES:
                self._spares.append(other)
                return
        other.close()

    # ------------------------------------------------------------------ executions
    _EXEC_COLS = """id, configuration_id, configuration_name, scenario_id, executable_id, status, target_status,
                    status_message, created_at, modified_at, submission_time, start_time, completion_time,
                    execution_schedule_id, workdir, rg, parent_execution_id, schedule_slot, extra_parameters,
                    commit_sha, status_details"""

    def _execution(self, r: Sequence[Any]) -> Execution:
        return Execution(r[0], r[1], r[2], r[3], r[4], Status(r[5]), r[6], r[7] or "", r[8], r[9], r[10], r[11],
                         r[12], r[13], r[14] or "", r[15], r[16], r[17], _pairs(r[18]), r[19], r[20])

    def create_execution(self, rg: str, configuration: Configuration, workdir_root: str,
                         parent_execution_id: str | None = None, *, schedule_id: str | None = None,
                         slot: str | None = None, extra_parameters: Sequence[tuple[str, str]] = (),
                         commit_sha: str | None = None) -> Execution:
        """A new UNKNOWN execution. With ``schedule_id`` and ``slot``, at most one execution per
        (schedule, slot) ever exists: a second claim raises :class:`Conflict` (UNIQUE index)."""
        eid = secrets.token_hex(8)
        now = now_iso()
        with self.transaction() as db:
            try:
                db.execute(f"""INSERT INTO executions({self._EXEC_COLS})
                               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                           (eid, configuration.id, configuration.name, configuration.scenario_id,
                            configuration.executable_id, Status.UNKNOWN.value, "COMPLETED", "", now, now, now, None,
                            None, schedule_id, os.path.join(workdir_root, eid), rg, parent_execution_id, slot,
                            _j([list(p) for p in extra_parameters]) if extra_parameters else None, commit_sha, None))
            except sqlite3.IntegrityError as exc:
                if slot is not None and "schedule_slot" in str(exc):
                    raise Conflict(f"schedule {schedule_id} already has an execution for slot {slot}") from None
                raise
            # A heartbeat from birth: an execution whose creator dies before its runner starts is
            # still reaped (a NULL heartbeat would compare as unknown forever).
            db.execute("UPDATE executions SET heartbeat_at=?, runner_pid=? WHERE id=?",
                       (time.time(), os.getpid(), eid))
        return self.get_execution(rg, eid)

    def set_execution_inputs(self, rg: str, execution_id: str, inputs: Sequence[dict[str, Any]]) -> None:
        """Record the input artifacts ``execution_id`` is bound to (``[{key, artifactId, ...}]``)."""
        with self.transaction() as db:
            db.execute("UPDATE executions SET input_artifacts=? WHERE rg=? AND id=?",
                       (_j([dict(i) for i in inputs]), rg, execution_id))

    def execution_inputs(self, rg: str, execution_id: str) -> list[dict[str, Any]] | None:
        """What :meth:`set_execution_inputs` recorded; None for an execution created before it existed."""
        r = self._one("SELECT input_artifacts FROM executions WHERE rg=? AND id=?", (rg, execution_id),
                      f"execution {execution_id!r}")
        return None if r[0] is None else list(json.loads(r[0]))

    def get_execution(self, rg: str, execution_id: str) -> Execution:
        r = self._one(f"SELECT {self._EXEC_COLS} FROM executions WHERE rg=? AND id=? AND deleted_at IS NULL",
                      (rg, execution_id), f"execution {execution_id!r}")
        return self._execution(r)

    def list_executions(self, rg: str, *, scenario_id: str | None = None, status: str | None = None,
                        executable_id: str | None = None, limit: int = 100, offset: int = 0) -> list[Execution]:
        sql = f"SELECT {self._EXEC_COLS} FROM executions WHERE rg=? AND deleted_at IS NULL"
        args: list[Any] = [rg]
        for col, val in (("scenario_id", scenario_id), ("status", status), ("executable_id", executable_id)):
            if val:
                sql += f" AND {col}=?"
                args.append(val)
        sql += " ORDER BY created_at DESC, id LIMIT ? OFFSET ?"
        args += [limit, offset]
        return [self._execution(r) for r in self.db.execute(sql, args)]

    def set_status(self, rg: str, execution_id: str, status: Status, message: str | None = None) -> None:
        with self.transaction() as db:
            old = self._status(rg, execution_id)
            if old == status:
                return
            check_transition(old, status)
            now = now_iso()
            sets = "status=?, modified_at=?"
            args: list[Any] = [status.value, now]
            if message is not None:
                sets += ", status_message=?"
                args.append(message)
            if status == Status.RUNNING:
                sets += ", start_time=COALESCE(start_time, ?)"
                args.append(now)
            if status.terminal:
                sets += ", completion_time=?"
                args.append(now)
            db.execute(f"UPDATE executions SET {sets} WHERE rg=? AND id=?", (*args, rg, execution_id))

    def request_stop(self, rg: str, execution_id: str) -> Execution:
        """Ask the execution's runner (any process) to stop it: ``targetStatus`` becomes STOPPED."""
        with self.transaction() as db:
            status = self._status(rg, execution_id)
            if status.terminal or status == Status.UNKNOWN:
                raise Conflict(f"Invalid Request, Current status {status.value} cannot be changed",
                               hint="only PENDING or RUNNING executions can be stopped")
            db.execute("UPDATE executions SET target_status='STOPPED', modified_at=? WHERE rg=? AND id=?",
                       (now_iso(), rg, execution_id))
        return self.get_execution(rg, execution_id)

    def target_status(self, rg: str, execution_id: str) -> str:
        row = self._one("SELECT target_status FROM executions WHERE rg=? AND id=?", (rg, execution_id),
                        f"execution {execution_id!r}")
        return str(row[0])

    def resource_groups(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM resource_groups ORDER BY id")]

    def active_executions(self, rg: str) -> list[tuple[str, Status, float, int | None, str]]:
        """(id, status, heartbeat epoch, runner pid, target status) of non-terminal executions."""
        rows = self.db.execute("""SELECT id, status, COALESCE(heartbeat_at, 0), runner_pid, target_status
                                  FROM executions WHERE rg=? AND status IN ('UNKNOWN','PENDING','RUNNING','STOPPING')""",
                               (rg,))
        return [(r[0], Status(r[1]), float(r[2]), r[3], r[4]) for r in rows]

    def heartbeat(self, rg: str, execution_id: str, pid: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE executions SET heartbeat_at=?, runner_pid=? WHERE rg=? AND id=?",
                       (time.time(), pid, rg, execution_id))

    # ------------------------------------------------------------------ steps
    def save_steps(self, rg: str, execution_id: str, steps: Sequence[StepRecord],
                   attempts: Sequence[Attempt] = (), cache: Sequence[tuple[str, str, str]] = (),
                   tracked: Sequence[tuple[str, int, Sequence[tuple[int, str, Any]]]] = ()) -> None:
        """Upsert step states, attempt rows and step-cache entries ``(key, node, outputs)`` at once,
        with the tracking-file lines ``(source, end, items)`` read at the steps' ends (as ``add_tracked``)."""
        with self.transaction() as db:
            for source, end, items in tracked:
                self.add_tracked(rg, execution_id, source, end, items)
            if self._status(rg, execution_id).terminal:
                return  # the reaper already closed this execution; a late runner write must not reopen it
            now = now_iso()
            db.executemany("""INSERT INTO step_cache(rg, cache_key, execution_id, node_id, outputs, created_at)
                              VALUES (?,?,?,?,?,?) ON CONFLICT(rg, cache_key) DO UPDATE SET
                              execution_id=excluded.execution_id, node_id=excluded.node_id,
                              outputs=excluded.outputs, created_at=excluded.created_at""",
                           [(rg, k, execution_id, n, o, now) for k, n, o in cache])
            db.executemany("""INSERT INTO steps(execution_id, node_id, kind, template, state, attempt, exit_code,
                              started_at, finished_at, message, log_path, outputs, cache_key, cache_inputs,
                              cache_note) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                              ON CONFLICT(execution_id, node_id) DO UPDATE SET state=excluded.state,
                              attempt=excluded.attempt, exit_code=excluded.exit_code,
                              started_at=excluded.started_at, finished_at=excluded.finished_at,
                              message=excluded.message, log_path=excluded.log_path, outputs=excluded.outputs,
                              cache_key=excluded.cache_key, cache_inputs=excluded.cache_inputs,
                              cache_note=excluded.cache_note""",
                           [(execution_id, s.node_id, s.kind, s.template, s.state.value, s.attempt, s.exit_code,
                             s.started_at, s.finished_at, s.message, s.log_path, s.outputs, s.cache_key or None,
                             s.cache_inputs or None, s.cache_note or None) for s in steps])
            db.executemany("""INSERT INTO step_attempts(execution_id, node_id, attempt, exit_code, started_at,
                              finished_at, log_path, message) VALUES (?,?,?,?,?,?,?,?)
                              ON CONFLICT(execution_id, node_id, attempt) DO UPDATE SET
                              exit_code=excluded.exit_code, finished_at=excluded.finished_at,
                              message=excluded.message""",
                           [(execution_id, a.node_id, a.attempt, a.exit_code, a.started_at, a.finished_at,
                             a.log_path, a.message) for a in attempts])

    def list_steps(self, rg: str, execution_id: str) -> list[StepRecord]:
        self._status(rg, execution_id)
        rows = self.db.execute("""SELECT execution_id, node_id, kind, template, state, attempt, exit_code, started_at,
                                  finished_at, message, log_path, outputs, cache_key, cache_inputs, cache_note
                                  FROM steps WHERE execution_id=? ORDER BY rowid""", (execution_id,))
        return [StepRecord(r[0], r[1], r[2], r[3], StepState(r[4]), r[5], r[6], r[7], r[8], r[9] or "", r[10] or "",
                           r[11] or "{}", r[12] or "", r[13] or "", r[14] or "") for r in rows]

    def list_attempts(self, rg: str, execution_id: str) -> list[Attempt]:
        self._status(rg, execution_id)
        rows = self.db.execute("""SELECT execution_id, node_id, attempt, exit_code, started_at, finished_at,
                                  log_path, message FROM step_attempts WHERE execution_id=?
                                  ORDER BY node_id, attempt""", (execution_id,))
        return [Attempt(r[0], r[1], r[2], r[3], r[4], r[5], r[6] or "", r[7] or "") for r in rows]

    def drop_steps(self, rg: str, execution_id: str, node_ids: Sequence[str]) -> None:
        """Remove the rows of steps that are no longer nodes of the run (a retried call's loop items
        of an earlier attempt); their attempt rows stay (``list_attempts``: the history)."""
        with self.transaction() as db:
            self._status(rg, execution_id)
            db.executemany("DELETE FROM steps WHERE execution_id=? AND node_id=?", [(execution_id, n) for n in node_ids])

    # ------------------------------------------------------------------ step cache
    def cache_get(self, rg: str, key: str, since: str = "") -> tuple[str, str, str] | None:
        """(execution id, node id, outputs JSON) of the cache entry, if any (written at ``since``, an
        ISO UTC time as :func:`now_iso` writes it, or later: Argo's ``memoize.maxAge``)."""
        row = self.db.execute("SELECT execution_id, node_id, outputs FROM step_cache WHERE rg=? AND cache_key=? "
                              "AND created_at>=?", (rg, key, since)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def previous_components(self, rg: str, executable_id: str, node_id: str,
                            before_execution: str) -> tuple[str, str] | None:
        """(execution id, cache_inputs JSON) of the latest earlier run of this step."""
        row = self.db.execute("""SELECT e.id, s.cache_inputs FROM steps s JOIN executions e ON s.execution_id = e.id
                                 WHERE e.rg=? AND e.executable_id=? AND s.node_id=? AND s.cache_inputs IS NOT NULL
                                 AND e.id != ? AND e.created_at <= (SELECT created_at FROM executions WHERE id=?)
                                 ORDER BY e.created_at DESC, e.rowid DESC LIMIT 1""",
                              (rg, executable_id, node_id, before_execution, before_execution)).fetchone()
        return (row[0], row[1]) if row else None


__all__ = ["SqliteStore", "StepState"]
