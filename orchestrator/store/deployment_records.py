"""Store records of deployments (AI API v2 ``/lm/deployments``) and of the deployment manager.

Owns: the SQL of the ``deployments`` and ``deployment_manager`` tables. Every read of a deployment
takes its resource group (another group's id is :class:`NotFound`); only the manager's own scan
(:meth:`DeploymentRecords.open_deployments`) reads across groups, because one manager supervises
every predictor of a store. A deleted deployment keeps its row (``deleted_at``) and is hidden from
every read. Built over a :class:`~orchestrator.store.sqlite.SqliteStore` (its connection and
``transaction``), so no other store module changes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any, Protocol

from orchestrator.errors import Conflict, NotFound
from orchestrator.store import now_iso
from orchestrator.store.api_records import Query

Row = dict[str, Any]

COLS = ("id, rg, configuration_id, configuration_name, scenario_id, executable_id, status, target_status, "
        "status_message, status_details, details, last_operation, latest_running_configuration_id, ttl, "
        "expires_at, created_at, modified_at, submission_time, start_time, completion_time, "
        "serving_configuration_id, port, pid, log_path")
OPEN = ("UNKNOWN", "PENDING", "RUNNING", "STOPPING")
TERMINAL = ("STOPPED", "DEAD", "COMPLETED")


class _Store(Protocol):
    db: Any

    def transaction(self) -> Any: ...
    def run_query(self, q: Query, cols: str, *, limit: int = ..., offset: int = ...,
                  order: str = ...) -> list[Row]: ...
    def count_query(self, q: Query) -> int: ...


class DeploymentRecords:
    """Deployments of one store; every method but the manager's takes the resource group."""

    def __init__(self, store: _Store) -> None:
        self.store = store

    def _rows(self, sql: str, args: Sequence[Any]) -> list[Row]:
        cur = self.store.db.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur]

    # ------------------------------------------------------------------ API side
    def create(self, rg: str, *, configuration_id: str, configuration_name: str, scenario_id: str,
               executable_id: str, ttl: str | None, ttl_seconds: float | None, log_dir: str) -> Row:
        dep_id = secrets.token_hex(8)
        now = now_iso()
        expires = time.time() + ttl_seconds if ttl_seconds else None
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO deployments(id, rg, configuration_id, configuration_name, scenario_id, executable_id, "
                "status, target_status, last_operation, ttl, expires_at, created_at, modified_at, submission_time, "
                "log_path) VALUES (?,?,?,?,?,?,'UNKNOWN','RUNNING','CREATE',?,?,?,?,?,?)",
                (dep_id, rg, configuration_id, configuration_name, scenario_id, executable_id, ttl, expires,
                 now, now, now, f"{log_dir}/{dep_id}.log"))
        return self.get(rg, dep_id)

    def get(self, rg: str, deployment_id: str) -> Row:
        rows = self._rows(f"SELECT {COLS} FROM deployments WHERE rg=? AND id=? AND deleted_at IS NULL",
                          (rg, deployment_id))
        if not rows:
            raise NotFound(f"deployment {deployment_id!r} not found")
        return rows[0]

    def query(self, rg: str, *, scenario_id: str | None = None, configuration_id: str | None = None,
              executable_ids: Sequence[str] | None = None, status: str | None = None) -> Query:
        return (Query("deployments", rg, "deleted_at IS NULL").eq("scenario_id", scenario_id)
                .eq("configuration_id", configuration_id).any_of("executable_id", executable_ids)
                .eq("status", status))

    def listing(self, q: Query, *, limit: int, offset: int) -> list[Row]:
        return self.store.run_query(q, COLS, limit=limit, offset=offset)

    def count(self, q: Query) -> int:
        return self.store.count_query(q)

    def ids_with_prefix(self, rg: str, prefix: str) -> list[str]:
        rows = self._rows("SELECT id FROM deployments WHERE rg=? AND deleted_at IS NULL AND substr(id, 1, ?)=? "
                          "ORDER BY created_at LIMIT 11", (rg, len(prefix), prefix))
        return [r["id"] for r in rows]

    def request_stop(self, rg: str, deployment_id: str, *, target: str = "STOPPED",
                     operation: str = "UPDATE", message: str | None = None) -> Row:
        """``targetStatus`` STOPPED (or DELETED); the manager stops the predictor. A deployment that
        already ended cannot be stopped (AI Core: "current status cannot be changed")."""
        with self.store.transaction() as db:
            row = self.get(rg, deployment_id)
            if target == "STOPPED" and row["status"] in TERMINAL:
                raise Conflict(f"deployment {deployment_id} is {row['status']}; its status cannot be changed")
            sets = "target_status=?, last_operation=?, modified_at=?"
            args: list[Any] = [target, operation, now_iso()]
            if message is not None:
                sets += ", status_message=?"
                args.append(message)
            db.execute(f"UPDATE deployments SET {sets} WHERE rg=? AND id=?", (*args, rg, deployment_id))
        return self.get(rg, deployment_id)

    def change_configuration(self, rg: str, deployment_id: str, *, configuration_id: str,
                             configuration_name: str) -> Row:
        """PATCH with a new configuration: the old one becomes ``latestRunningConfigurationId``; the
        manager starts the new predictor and switches once it is ready (DEAD: starts again)."""
        with self.store.transaction() as db:
            row = self.get(rg, deployment_id)
            if row["status"] not in ("PENDING", "RUNNING", "DEAD") or row["target_status"] != "RUNNING" \
                    and row["status"] != "DEAD":
                raise Conflict(f"deployment {deployment_id} is {row['status']} (target {row['target_status']}); "
                               "only a PENDING, RUNNING or DEAD deployment can change its configuration")
            latest = row["serving_configuration_id"] or row["configuration_id"]
            now = now_iso()
            status = "PENDING" if row["status"] == "DEAD" else row["status"]
            db.execute("UPDATE deployments SET configuration_id=?, configuration_name=?, "
                       "latest_running_configuration_id=?, last_operation='UPDATE', target_status='RUNNING', "
                       "status=?, status_message=?, completion_time=CASE WHEN ?='PENDING' THEN NULL "
                       "ELSE completion_time END, modified_at=? WHERE rg=? AND id=?",
                       (configuration_id, configuration_name, latest, status,
                        f"updating to configuration {configuration_id}", status, now, rg, deployment_id))
        return self.get(rg, deployment_id)

    def delete(self, rg: str, deployment_id: str) -> Row:
        """A deployment that no longer runs disappears now; a live one is stopped first (target
        DELETED: the manager hides it once its predictor has stopped)."""
        with self.store.transaction() as db:
            row = self.get(rg, deployment_id)
            now = now_iso()
            if row["status"] in TERMINAL or (row["status"] == "UNKNOWN" and not row["pid"]):
                db.execute("UPDATE deployments SET deleted_at=?, target_status='DELETED', last_operation='DELETE', "
                           "status=CASE WHEN status='UNKNOWN' THEN 'STOPPED' ELSE status END, modified_at=? "
                           "WHERE rg=? AND id=?", (now, now, rg, deployment_id))
            else:
                db.execute("UPDATE deployments SET target_status='DELETED', last_operation='DELETE', modified_at=? "
                           "WHERE rg=? AND id=?", (now, rg, deployment_id))
        return row

    # ------------------------------------------------------------------ manager side (all groups)
    def open_deployments(self) -> list[Row]:
        """Every deployment the manager has to act on: not ended, or asked to be deleted."""
        return self._rows(f"SELECT {COLS} FROM deployments WHERE deleted_at IS NULL AND "
                          "(status IN ('UNKNOWN','PENDING','RUNNING','STOPPING') OR target_status='DELETED')", ())

    def active_count(self) -> int:
        return int(self.store.db.execute(
            "SELECT COUNT(*) FROM deployments WHERE deleted_at IS NULL AND "
            "(status IN ('UNKNOWN','PENDING','RUNNING','STOPPING') OR target_status='DELETED')").fetchone()[0])

    def update(self, rg: str, deployment_id: str, **fields: Any) -> None:
        """Set columns (the manager's status writes). ``status`` also stamps ``startTime`` (RUNNING)
        and ``completionTime`` (STOPPED/DEAD) as AI Core does."""
        now = now_iso()
        status = fields.get("status")
        if status == "RUNNING":
            fields.setdefault("start_time", now)
            fields.setdefault("completion_time", None)
        elif status in TERMINAL:
            fields.setdefault("completion_time", now)
            fields.setdefault("port", None)
            fields.setdefault("pid", None)
        fields["modified_at"] = now
        cols = ", ".join(f"{k}=?" for k in fields)
        with self.store.transaction() as db:
            db.execute(f"UPDATE deployments SET {cols} WHERE rg=? AND id=?", (*fields.values(), rg, deployment_id))

    def hide(self, rg: str, deployment_id: str) -> None:
        now = now_iso()
        with self.store.transaction() as db:
            db.execute("UPDATE deployments SET deleted_at=?, modified_at=?, port=NULL, pid=NULL WHERE rg=? AND id=?",
                       (now, now, rg, deployment_id))

    def manager(self) -> Row | None:
        rows = self._rows("SELECT pid, token, heartbeat_at, started_at FROM deployment_manager WHERE id=1", ())
        return rows[0] if rows else None

    def claim_manager(self, pid: int, token: str, stale_after: float, *, dead_pid: int | None = None) -> bool:
        """Become the store's manager unless another beat within ``stale_after`` seconds and is not
        ``dead_pid`` (a manager the caller saw die: of several callers only the first wins)."""
        now = time.time()
        with self.store.transaction() as db:
            row = db.execute("SELECT pid, heartbeat_at FROM deployment_manager WHERE id=1").fetchone()
            if row is not None and row[0] and row[0] not in (pid, dead_pid) and (row[1] or 0) > now - stale_after:
                return False
            db.execute("INSERT INTO deployment_manager(id, pid, token, heartbeat_at, started_at) VALUES (1,?,?,?,?) "
                       "ON CONFLICT(id) DO UPDATE SET pid=excluded.pid, token=excluded.token, "
                       "heartbeat_at=excluded.heartbeat_at, started_at=excluded.started_at",
                       (pid, token, now, now_iso()))
        return True

    def manager_beat(self, pid: int) -> bool:
        """Heartbeat; False when another manager took over (this one must exit)."""
        with self.store.transaction() as db:
            cur = db.execute("UPDATE deployment_manager SET heartbeat_at=? WHERE id=1 AND pid=?", (time.time(), pid))
            return cur.rowcount == 1

    def release_manager(self, pid: int, *, only_if_idle: bool = False) -> bool:
        """Stop being the manager; with ``only_if_idle`` only when no deployment needs one (checked in
        the same transaction, so a deployment created meanwhile either sees no manager and starts
        one, or keeps this one)."""
        with self.store.transaction() as db:
            if only_if_idle and self.active_count():
                return False
            db.execute("UPDATE deployment_manager SET pid=NULL, heartbeat_at=NULL WHERE id=1 AND pid=?", (pid,))
        return True
