"""Store records of Argo ``synchronization`` mutexes held across the executions of one store.

Owns: the SQL of ``sync_holders`` (who holds which lock: an execution, or one node of it). A
lock is taken in one ``BEGIN IMMEDIATE`` transaction that first drops holders whose execution has
ended (terminal status, or gone), so a runner that died (and was reaped) never keeps a lock. A
mixin of :class:`~orchestrator.store.sqlite.SqliteStore` (uses its ``transaction``).
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager

from orchestrator.store import now_iso

_ENDED = "('COMPLETED','DEAD','STOPPED')"


class LockRecords:
    """Mutexes (``synchronization.mutexes``) shared by the executions of a resource group."""

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...  # provided by SqliteStore

    def try_lock(self, rg: str, lock: str, execution_id: str, node_id: str = "", limit: int = 1) -> bool:
        """Take ``lock`` for (execution, node) if fewer than ``limit`` hold it; True when held."""
        with self.transaction() as db:
            db.execute(f"""DELETE FROM sync_holders WHERE rg=? AND lock=? AND NOT EXISTS (
                             SELECT 1 FROM executions e WHERE e.rg=sync_holders.rg
                             AND e.id=sync_holders.execution_id AND e.status NOT IN {_ENDED})""", (rg, lock))
            if db.execute("SELECT 1 FROM sync_holders WHERE rg=? AND lock=? AND execution_id=? AND node_id=?",
                          (rg, lock, execution_id, node_id)).fetchone():
                return True
            held = db.execute("SELECT COUNT(*) FROM sync_holders WHERE rg=? AND lock=?", (rg, lock)).fetchone()[0]
            if held >= limit:
                return False
            db.execute("INSERT INTO sync_holders(rg, lock, execution_id, node_id, acquired_at) VALUES (?,?,?,?,?)",
                       (rg, lock, execution_id, node_id, now_iso()))
            return True

    def unlock(self, rg: str, execution_id: str, node_id: str | None = None) -> None:
        """Release what (execution, node) holds; ``node_id=None``: everything the execution holds."""
        with self.transaction() as db:
            if node_id is None:
                db.execute("DELETE FROM sync_holders WHERE rg=? AND execution_id=?", (rg, execution_id))
            else:
                db.execute("DELETE FROM sync_holders WHERE rg=? AND execution_id=? AND node_id=?",
                           (rg, execution_id, node_id))

    def lock_holders(self, rg: str, lock: str) -> list[tuple[str, str]]:
        """(execution, node) pairs holding ``lock``."""
        with self.transaction() as db:
            return [(r[0], r[1]) for r in db.execute(
                "SELECT execution_id, node_id FROM sync_holders WHERE rg=? AND lock=? ORDER BY acquired_at",
                (rg, lock))]
