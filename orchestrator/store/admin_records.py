"""Store records of the admin resources: resource groups, tokens, generic secrets, object stores.

Owns: the SQL that creates, labels, lists and deletes resource groups (a group that still holds
objects is not deleted); API tokens (global: they name their group scope themselves; only their
sha256 is stored; revoking one revokes the access tokens minted from it); generic secrets and
object store secrets per group (their data is read back only for the run that uses it, never
listed). A base of :class:`~orchestrator.store.api_records.ApiRecords`, so a mixin of
:class:`~orchestrator.store.sqlite.SqliteStore` (uses its ``db``, ``transaction``, ``_one`` and
``ApiRecords._rows``). Must not import control, run, api or cli.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from orchestrator.errors import Conflict, NotFound
from orchestrator.store import now_iso

Row = dict[str, Any]


class AdminRecords:
    """Resource groups, tokens, secrets and object stores."""

    db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...  # provided by SqliteStore
    def _one(self, sql: str, args: Sequence[Any], what: str) -> Any: ...  # provided by SqliteStore
    def _rows(self, sql: str, args: Sequence[Any]) -> list[Row]: ...  # provided by ApiRecords

    # ------------------------------------------------------------------ resource groups
    def get_resource_group(self, rg: str) -> Row:
        rows = self._rows("SELECT id, created_at, labels FROM resource_groups WHERE id=?", (rg,))
        if not rows:
            raise NotFound(f"resource group {rg!r} not found")
        return rows[0]

    def list_resource_groups(self) -> list[Row]:
        return self._rows("SELECT id, created_at, labels FROM resource_groups ORDER BY id", ())

    def create_resource_group(self, rg: str, labels: Sequence[tuple[str, str]]) -> Row:
        with self.transaction() as db:
            try:
                db.execute("INSERT INTO resource_groups(id, created_at, labels) VALUES (?,?,?)",
                           (rg, now_iso(), json.dumps([list(p) for p in labels])))
            except sqlite3.IntegrityError:
                raise Conflict(f"resource group {rg!r} already exists") from None
        return self.get_resource_group(rg)

    def set_resource_group_labels(self, rg: str, labels: Sequence[tuple[str, str]]) -> None:
        with self.transaction() as db:
            self.get_resource_group(rg)
            db.execute("UPDATE resource_groups SET labels=? WHERE id=?", (json.dumps([list(p) for p in labels]), rg))

    def delete_resource_group(self, rg: str) -> None:
        with self.transaction() as db:
            self.get_resource_group(rg)
            for table in ("scenarios", "configurations", "executions", "artifacts", "execution_schedules"):
                if db.execute(f"SELECT 1 FROM {table} WHERE rg=? LIMIT 1", (rg,)).fetchone():
                    raise Conflict(f"resource group {rg!r} still holds {table}",
                                   hint="delete its objects first")
            for table in ("secrets", "object_stores", "validated_files"):
                db.execute(f"DELETE FROM {table} WHERE rg=?", (rg,))
            db.execute("DELETE FROM resource_groups WHERE id=?", (rg,))

    # ------------------------------------------------------------------ tokens
    TOKEN_COLS = "id, name, role, kind, created_at, expires_at, revoked_at, rg, execution_id, parent_id"

    def add_token(self, *, name: str, role: str, sha256: str, kind: str = "api", expires_at: float | None = None,
                  rg: str | None = None, execution_id: str | None = None, parent_id: str | None = None) -> Row:
        tid = "tok-" + secrets.token_hex(6)
        with self.transaction() as db:
            try:
                db.execute(f"INSERT INTO tokens(sha256, {self.TOKEN_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                           (sha256, tid, name, role, kind, now_iso(), expires_at, None, rg, execution_id, parent_id))
            except sqlite3.IntegrityError:
                raise Conflict(f"a token named {name!r} already exists", hint="pick another --name") from None
        return self._rows(f"SELECT {self.TOKEN_COLS} FROM tokens WHERE id=?", (tid,))[0]

    def token_by_hash(self, sha256: str) -> Row | None:
        """The live token with this digest (not revoked, not expired), else None."""
        rows = self._rows(f"SELECT {self.TOKEN_COLS} FROM tokens WHERE sha256=? AND revoked_at IS NULL", (sha256,))
        if not rows or (rows[0]["expires_at"] is not None and rows[0]["expires_at"] < time.time()):
            return None
        return rows[0]

    def list_tokens(self) -> list[Row]:
        return self._rows(f"SELECT {self.TOKEN_COLS} FROM tokens WHERE kind='api' ORDER BY created_at, id", ())

    def revoke_token(self, name_or_id: str) -> Row:
        with self.transaction() as db:
            rows = self._rows(f"SELECT {self.TOKEN_COLS} FROM tokens WHERE kind='api' AND (id=? OR name=?)",
                              (name_or_id, name_or_id))
            if not rows:
                raise NotFound(f"token {name_or_id!r} not found")
            now = now_iso()
            # Access tokens minted from it (POST /oauth/token) die with it.
            db.execute("UPDATE tokens SET revoked_at=COALESCE(revoked_at, ?) WHERE id=? OR parent_id=?",
                       (now, rows[0]["id"], rows[0]["id"]))
        return rows[0]

    def revoke_execution_tokens(self, execution_id: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE tokens SET revoked_at=? WHERE execution_id=? AND revoked_at IS NULL",
                       (now_iso(), execution_id))

    # ------------------------------------------------------------------ secrets / object stores
    @staticmethod
    def _expect(db: sqlite3.Connection, table: str, what: str, rg: str, name: str, *, create: bool,
                hint: str) -> None:
        """Before a write: Conflict if ``create`` and the row exists, NotFound if not and it does not."""
        exists = db.execute(f"SELECT 1 FROM {table} WHERE rg=? AND name=?", (rg, name)).fetchone()
        if create and exists:
            raise Conflict(f"{what} {name!r} already exists", hint=hint)
        if not create and not exists:
            raise NotFound(f"{what} {name!r} not found")

    def put_secret(self, rg: str, name: str, data: dict[str, str], *, create: bool) -> None:
        with self.transaction() as db:
            self._expect(db, "secrets", "secret", rg, name, create=create, hint="PATCH it to change its data")
            self._write_secret(db, rg, name, data)

    def _write_secret(self, db: sqlite3.Connection, rg: str, name: str, data: dict[str, str]) -> None:
        """Insert or replace a secret's data (inside the caller's transaction)."""
        now = now_iso()
        db.execute("""INSERT INTO secrets(rg, name, data, created_at, modified_at) VALUES (?,?,?,?,?)
                      ON CONFLICT(rg, name) DO UPDATE SET data=excluded.data, modified_at=excluded.modified_at""",
                   (rg, name, json.dumps(data), now, now))

    def list_secrets(self, rg: str) -> list[Row]:
        return self._rows("SELECT name, created_at, modified_at FROM secrets WHERE rg=? ORDER BY name", (rg,))

    def secret_data(self, rg: str, name: str) -> dict[str, str]:
        row = self._one("SELECT data FROM secrets WHERE rg=? AND name=?", (rg, name), f"secret {name!r}")
        return dict(json.loads(row[0]))

    def delete_secret(self, rg: str, name: str) -> None:
        with self.transaction() as db:
            if db.execute("DELETE FROM secrets WHERE rg=? AND name=?", (rg, name)).rowcount == 0:
                raise NotFound(f"secret {name!r} not found")

    def put_object_store(self, rg: str, name: str, *, type: str, path: str, metadata: dict[str, str],
                         data: dict[str, str], create: bool) -> None:
        now = now_iso()
        with self.transaction() as db:
            self._expect(db, "object_stores", "object store secret", rg, name, create=create, hint="PATCH it instead")
            db.execute("""INSERT INTO object_stores(rg, name, type, path, metadata, data, created_at, modified_at)
                          VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(rg, name) DO UPDATE SET type=excluded.type,
                          metadata=excluded.metadata, data=excluded.data, modified_at=excluded.modified_at""",
                       (rg, name, type, path, json.dumps(metadata), json.dumps(data), now, now))

    def list_object_stores(self, rg: str) -> list[Row]:
        return self._rows("SELECT name, type, path, metadata, created_at, modified_at FROM object_stores "
                          "WHERE rg=? ORDER BY name", (rg,))

    def get_object_store(self, rg: str, name: str) -> Row:
        rows = self._rows("SELECT name, type, path, metadata, created_at, modified_at FROM object_stores "
                          "WHERE rg=? AND name=?", (rg, name))
        if not rows:
            raise NotFound(f"object store secret {name!r} not found")
        return rows[0]

    def object_store_access(self, rg: str, name: str) -> tuple[str, dict[str, str], dict[str, str]] | None:
        """``(type, metadata, data)`` of an object store secret, credentials included (for the
        object store's transfers only: never returned by the API), or None when there is none."""
        row = self.db.execute("SELECT type, metadata, data FROM object_stores WHERE rg=? AND name=?",
                              (rg, name)).fetchone()
        return (str(row[0]), dict(json.loads(row[1])), dict(json.loads(row[2]))) if row else None

    def delete_object_store(self, rg: str, name: str) -> Row:
        with self.transaction() as db:
            row = self.get_object_store(rg, name)
            db.execute("DELETE FROM object_stores WHERE rg=? AND name=?", (rg, name))
        return row
