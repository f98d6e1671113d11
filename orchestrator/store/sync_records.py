"""Store records of git sync (repositories, applications, synced files) and schedule slots.

Owns: the SQL for ``repositories``, ``applications``, ``application_files``,
``application_objects`` (which executable / configuration / schedule each application created,
under a stable id) and ``schedule_slots`` (every slot the scheduler decided not to run, with the
reason), plus the few writes sync needs on shared tables (executable commit and ``gone_at``,
configuration and schedule upserts under a given id). A mixin of
:class:`~orchestrator.store.sqlite.SqliteStore` (uses its ``db``, ``transaction`` and ``_one``).

Repositories and applications are tenant-wide, as AI Core's ``/v2/admin`` objects are; an
application names the resource group its objects go to, and every read of those objects is
scoped by that group. Repository credentials live in the ``secrets`` table under
:data:`ADMIN_RG`, never in these tables.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from orchestrator.errors import Conflict, NotFound
from orchestrator.store import now_iso

Row = dict[str, Any]
ADMIN_RG = "(admin)"  # not a valid resource-group id, so it never collides with a user's secrets
_OPEN = "('UNKNOWN','PENDING','RUNNING','STOPPING')"


class SyncRecords:
    """Repositories, applications, file sync results and (schedule, slot) records."""

    db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...  # provided by SqliteStore
    def _write_secret(self, db: sqlite3.Connection, rg: str, name: str,
                      data: dict[str, str]) -> None: ...  # provided by ApiRecords

    def _dicts(self, sql: str, args: Sequence[Any]) -> list[Row]:
        cur = self.db.execute(sql, args)
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    def _single(self, sql: str, args: Sequence[Any], what: str) -> Row:
        rows = self._dicts(sql, args)
        if not rows:
            raise NotFound(f"{what} not found")
        return rows[0]

    # ------------------------------------------------------------------ repositories
    def add_repository(self, name: str, url: str, *, username: str | None = None,
                       password: str | None = None) -> Row:
        """A new repository; ``username``/``password`` go to the secrets table (never returned)."""
        now = now_iso()
        secret = f"repository:{name}" if password is not None else None
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM repositories WHERE name=?", (name,)).fetchone():
                raise Conflict(f"repository {name!r} already exists", hint="remove it first to change its URL")
            db.execute("""INSERT INTO repositories(name, url, username, secret_name, status, created_at, modified_at)
                          VALUES (?,?,?,?,'COMPLETED',?,?)""", (name, url, username, secret, now, now))
            if secret is not None:
                self._write_secret(db, ADMIN_RG, secret, {"username": username or "", "password": password})
        return self.get_repository(name)

    def set_repository_credentials(self, name: str, *, username: str | None, password: str | None) -> Row:
        """New credentials for a repository (``PATCH``): a password replaces the stored secret, a
        username alone keeps the password; neither is ever returned."""
        now = now_iso()
        with self.transaction() as db:
            self.get_repository(name)
            secret = f"repository:{name}"
            row = db.execute("SELECT data FROM secrets WHERE rg=? AND name=?", (ADMIN_RG, secret)).fetchone()
            if password is None and row is not None:
                password = str(json.loads(row[0])["password"])
            if password is not None:
                self._write_secret(db, ADMIN_RG, secret, {"username": username or "", "password": password})
            db.execute("UPDATE repositories SET username=?, secret_name=?, modified_at=? WHERE name=?",
                       (username, secret if password is not None else None, now, name))
        return self.get_repository(name)

    def get_repository(self, name: str) -> Row:
        return self._single("SELECT name, url, username, status, message, created_at, modified_at "
                            "FROM repositories WHERE name=?", (name,), f"repository {name!r}")

    def list_repositories(self) -> list[Row]:
        return self._dicts("SELECT name, url, username, status, message, created_at, modified_at "
                           "FROM repositories ORDER BY name", ())

    def repository_credentials(self, name: str) -> tuple[str, str] | None:
        """``(username, password)`` for git, or None; only the sync use case asks for it."""
        row = self.db.execute("""SELECT s.data FROM repositories r JOIN secrets s
                                 ON s.rg=? AND s.name=r.secret_name WHERE r.name=?""", (ADMIN_RG, name)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return str(data.get("username") or ""), str(data["password"])

    def set_repository_status(self, name: str, status: str, message: str = "") -> None:
        with self.transaction() as db:
            db.execute("UPDATE repositories SET status=?, message=?, modified_at=? WHERE name=?",
                       (status, message, now_iso(), name))

    def delete_repository(self, name: str) -> None:
        with self.transaction() as db:
            self.get_repository(name)
            apps = [r[0] for r in db.execute("SELECT name FROM applications WHERE repository=?", (name,))]
            if apps:
                raise Conflict(f"repository {name!r} is used by application(s) {', '.join(apps)}",
                               hint="delete those applications first")
            db.execute("DELETE FROM secrets WHERE rg=? AND name=?", (ADMIN_RG, f"repository:{name}"))
            db.execute("DELETE FROM repositories WHERE name=?", (name,))

    # ------------------------------------------------------------------ applications
    _APP_COLS = """name, repository, path, revision, rg, last_commit, checker, sync_status, message, last_sync_at,
                   sync_started_at, sync_duration, created_at, modified_at"""

    def add_application(self, name: str, *, repository: str, path: str, revision: str, rg: str,
                        create_group: bool = False) -> Row:
        """A new application; its resource group must exist unless ``create_group`` (the caller
        validated the id: this never creates a reserved group such as :data:`ADMIN_RG`)."""
        now = now_iso()
        if rg == ADMIN_RG:
            raise Conflict(f"resource group {rg!r} is reserved")
        with self.transaction() as db:
            self.get_repository(repository)
            if db.execute("SELECT 1 FROM applications WHERE name=?", (name,)).fetchone():
                raise Conflict(f"application {name!r} already exists")
            if create_group:
                db.execute("INSERT OR IGNORE INTO resource_groups(id, created_at) VALUES (?, ?)", (rg, now))
            elif db.execute("SELECT 1 FROM resource_groups WHERE id=?", (rg,)).fetchone() is None:
                raise NotFound(f"resource group {rg!r} not found", hint="create the resource group first")
            db.execute("""INSERT INTO applications(name, repository, path, revision, rg, created_at, modified_at)
                          VALUES (?,?,?,?,?,?,?)""", (name, repository, path, revision, rg, now, now))
        return self.get_application(name)

    def update_application(self, name: str, *, repository: str | None = None, path: str | None = None,
                           revision: str | None = None) -> Row:
        """Point an application elsewhere (``PATCH``); the next sync re-reads everything (the
        recorded checker is cleared, so an unchanged commit is no reason to skip it)."""
        with self.transaction() as db:
            self.get_application(name)
            if repository is not None:
                self.get_repository(repository)
            db.execute("""UPDATE applications SET repository=COALESCE(?, repository), path=COALESCE(?, path),
                          revision=COALESCE(?, revision), checker=NULL, modified_at=? WHERE name=?""",
                       (repository, path, revision, now_iso(), name))
        return self.get_application(name)

    def get_application(self, name: str) -> Row:
        return self._single(f"SELECT {self._APP_COLS} FROM applications WHERE name=?", (name,),
                            f"application {name!r}")

    def list_applications(self) -> list[Row]:
        return self._dicts(f"SELECT {self._APP_COLS} FROM applications ORDER BY name", ())

    def delete_application(self, name: str) -> None:
        """Forget the application; what it registered stays (executions keep their history)."""
        with self.transaction() as db:
            self.get_application(name)
            db.execute("DELETE FROM application_files WHERE application=?", (name,))
            db.execute("DELETE FROM application_objects WHERE application=?", (name,))
            db.execute("DELETE FROM applications WHERE name=?", (name,))

    def start_sync(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE applications SET sync_status='IN_PROGRESS', sync_started_at=? WHERE name=?",
                       (now_iso(), name))

    def finish_sync(self, name: str, *, status: str, message: str, commit: str | None, checker: str | None,
                    duration: float) -> None:
        """Record a sync's outcome; ``commit``/``checker`` None keep the last good ones (failed fetch)."""
        with self.transaction() as db:
            db.execute("""UPDATE applications SET sync_status=?, message=?, last_commit=COALESCE(?, last_commit),
                          checker=COALESCE(?, checker), last_sync_at=?, sync_duration=?, modified_at=?
                          WHERE name=?""", (status, message, commit, checker, now_iso(), duration, now_iso(), name))

    def application_files(self, name: str) -> list[Row]:
        rows = self._dicts("SELECT path, status, errors, warnings, objects, note, commit_sha FROM application_files "
                           "WHERE application=? ORDER BY path", (name,))
        for r in rows:
            for key in ("errors", "warnings", "objects"):
                r[key] = json.loads(r[key])
        return rows

    def replace_application_files(self, name: str, commit: str, files: Sequence[Row]) -> None:
        """The per-file results of one sync (every file, valid or not), replacing the previous ones."""
        with self.transaction() as db:
            db.execute("DELETE FROM application_files WHERE application=?", (name,))
            db.executemany("""INSERT INTO application_files(application, path, status, errors, warnings, objects,
                              note, commit_sha) VALUES (?,?,?,?,?,?,?,?)""",
                           [(name, f["path"], f["status"], json.dumps(f["errors"]), json.dumps(f["warnings"]),
                             json.dumps(f["objects"]), f.get("note"), commit) for f in files])

    # ------------------------------------------------------------------ objects an application owns
    def application_objects(self, name: str) -> list[Row]:
        return self._dicts("""SELECT kind, name, rg, object_id, path, digest, commit_sha, gone_at
                              FROM application_objects WHERE application=? ORDER BY kind, name""", (name,))

    def put_application_object(self, app: str, *, kind: str, name: str, rg: str, object_id: str, path: str,
                               digest: str, commit: str) -> None:
        with self.transaction() as db:
            db.execute("""INSERT INTO application_objects(application, kind, name, rg, object_id, path, digest,
                          commit_sha) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(application, kind, name) DO UPDATE SET
                          rg=excluded.rg, object_id=excluded.object_id, path=excluded.path, digest=excluded.digest,
                          commit_sha=excluded.commit_sha, gone_at=NULL""",
                       (app, kind, name, rg, object_id, path, digest, commit))

    def mark_object_gone(self, app: str, kind: str, name: str) -> None:
        """The object's document left the repository: flag it (executables get ``gone_at`` too)."""
        now = now_iso()
        with self.transaction() as db:
            row = db.execute("SELECT rg, object_id FROM application_objects WHERE application=? AND kind=? AND name=?",
                             (app, kind, name)).fetchone()
            if row is None:
                return
            db.execute("UPDATE application_objects SET gone_at=COALESCE(gone_at, ?) WHERE application=? AND kind=? "
                       "AND name=?", (now, app, kind, name))
            if kind == "executable":  # unless another application of the group still defines it
                db.execute("""UPDATE executables SET gone_at=COALESCE(gone_at, ?) WHERE rg=? AND id=? AND NOT EXISTS
                              (SELECT 1 FROM application_objects WHERE kind='executable' AND rg=? AND object_id=?
                               AND gone_at IS NULL AND application<>?)""", (now, row[0], row[1], row[0], row[1], app))
            elif kind == "schedule":
                db.execute("""UPDATE execution_schedules SET deleted_at=COALESCE(deleted_at, ?), status='INACTIVE',
                              modified_at=? WHERE rg=? AND id=?""", (now, now, row[0], row[1]))

    def drifted_executables(self, app: str) -> dict[str, str]:
        """Executables the application registered (live objects) whose row no longer matches what
        it registered: ``replaced`` (another registration, e.g. a local ``run`` of a file with the
        same name, changed the document, or the row is missing) or ``gone`` (marked gone anyway)."""
        return {str(r[0]): str(r[1]) for r in self.db.execute(
            """SELECT o.object_id, CASE WHEN e.id IS NULL OR e.digest IS NOT o.digest THEN 'replaced' ELSE 'gone' END
               FROM application_objects o LEFT JOIN executables e ON e.rg=o.rg AND e.id=o.object_id
               WHERE o.application=? AND o.kind='executable' AND o.gone_at IS NULL
               AND (e.id IS NULL OR e.digest IS NOT o.digest OR e.gone_at IS NOT NULL)""", (app,))}

    def executable_owners(self, rg: str, *, other_than: str) -> dict[str, str]:
        """Executable id -> an application other than ``other_than`` whose live object it is, in ``rg``."""
        return {str(r[0]): str(r[1]) for r in self.db.execute(
            """SELECT object_id, MIN(application) FROM application_objects WHERE rg=? AND kind='executable'
               AND gone_at IS NULL AND application<>? GROUP BY object_id""", (rg, other_than))}

    def set_executable_origin(self, rg: str, executable_id: str, commit: str) -> None:
        """The commit the registered template came from; a template back in the repo is no longer gone."""
        with self.transaction() as db:
            db.execute("UPDATE executables SET commit_sha=?, gone_at=NULL WHERE rg=? AND id=?",
                       (commit, rg, executable_id))

    def executable_origin(self, rg: str, executable_id: str) -> tuple[str | None, str | None]:
        """``(commit_sha, gone_at)`` of an executable."""
        row = self.db.execute("SELECT commit_sha, gone_at FROM executables WHERE rg=? AND id=?",
                              (rg, executable_id)).fetchone()
        if row is None:
            raise NotFound(f"executable {executable_id!r} not found")
        return row[0], row[1]

    def put_configuration(self, rg: str, configuration_id: str, *, name: str, scenario_id: str,
                          executable_id: str, parameter_bindings: Sequence[tuple[str, str]],
                          artifact_bindings: Sequence[tuple[str, str]], source: str) -> None:
        """Create or update a git-synced configuration under its stable id."""
        with self.transaction() as db:
            db.execute("""INSERT INTO configurations(rg, id, name, scenario_id, executable_id, parameter_bindings,
                          input_artifact_bindings, created_at, source) VALUES (?,?,?,?,?,?,?,?,?)
                          ON CONFLICT(rg, id) DO UPDATE SET name=excluded.name, scenario_id=excluded.scenario_id,
                          executable_id=excluded.executable_id, parameter_bindings=excluded.parameter_bindings,
                          input_artifact_bindings=excluded.input_artifact_bindings, source=excluded.source""",
                       (rg, configuration_id, name, scenario_id, executable_id,
                        json.dumps([list(p) for p in parameter_bindings]),
                        json.dumps([list(p) for p in artifact_bindings]), now_iso(), source))

    def put_synced_schedule(self, rg: str, schedule_id: str, fields: Row) -> None:
        """Create, update or revive a git-synced schedule under its stable id; ``last_slot`` is kept."""
        now = now_iso()
        cols = sorted(fields)
        with self.transaction() as db:
            db.execute(f"""INSERT INTO execution_schedules(rg, id, {', '.join(cols)}, created_at, modified_at)
                           VALUES (?,?,{','.join('?' * len(cols))},?,?) ON CONFLICT(rg, id) DO UPDATE SET
                           {', '.join(f'{c}=excluded.{c}' for c in cols)}, deleted_at=NULL,
                           modified_at=excluded.modified_at""",
                       (rg, schedule_id, *[fields[c] for c in cols], now, now))

    # ------------------------------------------------------------------ scheduler bookkeeping
    def due_candidates(self, rg: str) -> list[Row]:
        """Active, not deleted schedules of ``rg`` with what :func:`scheduler.due` needs."""
        return self._dicts("""SELECT id, name, cron, configuration_id, start, end, status, timezone, catchup,
                              max_catchup, concurrency, slot_parameter, last_slot, created_at
                              FROM execution_schedules WHERE rg=? AND deleted_at IS NULL AND status='ACTIVE'
                              ORDER BY id""", (rg,))

    def schedule_row(self, rg: str, schedule_id: str) -> Row:
        """One schedule (deleted ones too: backfill and history need them), all columns."""
        return self._single("SELECT * FROM execution_schedules WHERE rg=? AND id=?", (rg, schedule_id),
                            f"execution schedule {schedule_id!r}")

    def advance_last_slot(self, rg: str, schedule_id: str, slot: str) -> bool:
        """Move ``last_slot`` forward only (two schedulers may race); True if this call moved it."""
        with self.transaction() as db:
            cur = db.execute("""UPDATE execution_schedules SET last_slot=? WHERE rg=? AND id=?
                                AND (last_slot IS NULL OR last_slot < ?)""", (slot, rg, schedule_id, slot))
            return cur.rowcount > 0

    def record_slots(self, rg: str, schedule_id: str, items: Sequence[tuple[str, str, str]]) -> None:
        """``(slot, outcome, reason)`` for slots not run (skipped, failed); the first decision stays."""
        now = now_iso()
        with self.transaction() as db:
            db.executemany("""INSERT OR IGNORE INTO schedule_slots(rg, schedule_id, slot, outcome, reason, decided_at)
                              VALUES (?,?,?,?,?,?)""", [(rg, schedule_id, s, o, r, now) for s, o, r in items])

    def set_slot(self, rg: str, schedule_id: str, slot: str, outcome: str, reason: str,
                 execution_id: str | None = None) -> None:
        """The final word on a claimed slot: ``started`` (with its execution) or ``failed`` (why).

        A None ``execution_id`` never erases a recorded one, and a slot whose outcome does not
        change keeps its reason and decision time (a backfill over slots that already ran)."""
        now = now_iso()
        with self.transaction() as db:
            db.execute("""INSERT INTO schedule_slots(rg, schedule_id, slot, outcome, reason, execution_id, decided_at)
                          VALUES (?,?,?,?,?,?,?) ON CONFLICT(schedule_id, slot) DO UPDATE SET
                          execution_id=COALESCE(excluded.execution_id, schedule_slots.execution_id),
                          reason=CASE WHEN schedule_slots.outcome=excluded.outcome THEN schedule_slots.reason
                                      ELSE excluded.reason END,
                          decided_at=CASE WHEN schedule_slots.outcome=excluded.outcome THEN schedule_slots.decided_at
                                          ELSE excluded.decided_at END,
                          outcome=excluded.outcome""", (rg, schedule_id, slot, outcome, reason, execution_id, now))

    def stale_claims(self, rg: str, decided_before: str) -> list[Row]:
        """Slots of ``rg`` still ``claimed`` since before ``decided_before`` (a scheduler that died
        between the claim and the submit), with the execution created for the slot, if any, and
        whether their schedule may still start runs (``live``)."""
        return self._dicts("""SELECT s.schedule_id, s.slot, s.decided_at,
                              (SELECT e.id FROM executions e WHERE e.execution_schedule_id=s.schedule_id
                               AND e.schedule_slot=s.slot) AS execution_id,
                              (x.deleted_at IS NULL AND x.status='ACTIVE') AS live
                              FROM schedule_slots s JOIN execution_schedules x ON x.rg=s.rg AND x.id=s.schedule_id
                              WHERE s.rg=? AND s.outcome='claimed' AND s.decided_at<? ORDER BY s.schedule_id, s.slot""",
                           (rg, decided_before))

    def slot_execution(self, rg: str, schedule_id: str, slot: str) -> str | None:
        """The id of the execution a schedule created for ``slot``, or None."""
        row = self.db.execute("SELECT id FROM executions WHERE rg=? AND execution_schedule_id=? AND schedule_slot=?",
                              (rg, schedule_id, slot)).fetchone()
        return None if row is None else str(row[0])

    def slot_records(self, rg: str, schedule_id: str) -> list[Row]:
        return self._dicts("""SELECT slot, outcome, reason, execution_id, decided_at FROM schedule_slots WHERE rg=? AND
                              schedule_id=? ORDER BY slot""", (rg, schedule_id))

    def open_schedule_executions(self, rg: str, schedule_id: str) -> list[str]:
        """Ids of the schedule's executions that have not ended (for the concurrency policy)."""
        return [r[0] for r in self.db.execute(
            f"""SELECT id FROM executions WHERE execution_schedule_id=? AND rg=? AND status IN {_OPEN}
                AND deleted_at IS NULL ORDER BY created_at""", (schedule_id, rg))]

    def schedule_slot_executions(self, rg: str, schedule_id: str) -> list[tuple[str, str, str]]:
        """``(slot, execution id, status)`` of every execution a schedule created, by slot."""
        return [(r[0], r[1], r[2]) for r in self.db.execute(
            """SELECT schedule_slot, id, status FROM executions WHERE rg=? AND execution_schedule_id=?
               ORDER BY schedule_slot, created_at""", (rg, schedule_id))]
