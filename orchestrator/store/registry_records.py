"""Store records of docker registry secrets (``/v2/admin/dockerRegistrySecrets``, issue 13).

Owns: the SQL of the ``docker_registry_secrets`` table — tenant-wide as in AI Core (no resource
group), its ``data`` the ``{".dockerconfigjson": base64}`` map, written and read here and never
listed: listings give names only. A mixin of :class:`~orchestrator.store.sqlite.SqliteStore`
(uses its ``db``, ``transaction`` and ``_one``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from orchestrator.errors import Conflict, NotFound
from orchestrator.store import now_iso


class RegistryRecords:
    """Docker registry secrets (the container executor's ``imagePullSecrets``)."""

    db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...  # provided by SqliteStore
    def _one(self, sql: str, args: Sequence[Any], what: str) -> Any: ...  # provided by SqliteStore

    def put_registry_secret(self, name: str, data: dict[str, str], *, create: bool) -> None:
        now = now_iso()
        with self.transaction() as db:
            exists = db.execute("SELECT 1 FROM docker_registry_secrets WHERE name=?", (name,)).fetchone()
            if create and exists:
                raise Conflict(f"docker registry secret {name!r} already exists", hint="PATCH it to change its data")
            if not create and not exists:
                raise NotFound(f"docker registry secret {name!r} not found")
            db.execute("""INSERT INTO docker_registry_secrets(name, data, created_at, modified_at) VALUES (?,?,?,?)
                          ON CONFLICT(name) DO UPDATE SET data=excluded.data, modified_at=excluded.modified_at""",
                       (name, json.dumps(data), now, now))

    def list_registry_secrets(self) -> list[dict[str, str]]:
        rows = self.db.execute("SELECT name, created_at, modified_at FROM docker_registry_secrets ORDER BY name")
        return [{"name": r[0], "created_at": r[1], "modified_at": r[2]} for r in rows]

    def registry_secret_data(self, name: str) -> dict[str, str]:
        row = self._one("SELECT data FROM docker_registry_secrets WHERE name=?", (name,),
                        f"docker registry secret {name!r}")
        return dict(json.loads(row[0]))

    def delete_registry_secret(self, name: str) -> None:
        with self.transaction() as db:
            if db.execute("DELETE FROM docker_registry_secrets WHERE name=?", (name,)).rowcount == 0:
                raise NotFound(f"docker registry secret {name!r} not found")
