"""Store records of requests to resume suspended steps (Argo's ``argo resume`` / ``argo node set``).

Owns: the SQL of ``resume_requests``: any process (the CLI) asks an execution's runner to resume
its suspended steps — all of them (``node_id`` '') or one — with the output parameters a
``valueFrom.supplied`` output gets; the runner takes (reads and deletes) them in one transaction.
A mixin of :class:`~orchestrator.store.sqlite.SqliteStore` (uses its ``transaction``).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager

from orchestrator.store import now_iso


class ResumeRecords:
    """Resume requests for suspended steps, one queue per execution."""

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...  # provided by SqliteStore

    def request_resume(self, rg: str, execution_id: str, node_id: str = "",
                       outputs: dict[str, str] | None = None) -> None:
        """Ask the runner of ``execution_id`` to resume ``node_id`` ('' = every suspended step)."""
        with self.transaction() as db:
            db.execute("INSERT INTO resume_requests(rg, execution_id, node_id, outputs, created_at) VALUES (?,?,?,?,?)",
                       (rg, execution_id, node_id, json.dumps(outputs or {}), now_iso()))

    def take_resume_requests(self, rg: str, execution_id: str) -> list[tuple[str, dict[str, str]]]:
        """The pending requests (node id, output parameters), oldest first; they are removed."""
        with self.transaction() as db:
            rows = db.execute("SELECT seq, node_id, outputs FROM resume_requests WHERE rg=? AND execution_id=? "
                              "ORDER BY seq", (rg, execution_id)).fetchall()
            if rows:
                db.execute("DELETE FROM resume_requests WHERE rg=? AND execution_id=? AND seq<=?",
                           (rg, execution_id, rows[-1][0]))
        return [(str(r[1]), {str(k): str(v) for k, v in json.loads(r[2]).items()}) for r in rows]
