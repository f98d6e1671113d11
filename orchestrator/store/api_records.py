"""Store records the REST API adds: execution schedules and the listings of the catalog.

Owns: the :class:`Query` builder, the filtered, paged and counted listings of the catalog
(scenarios, versions, executables, configurations, artifacts, executions), reading and deleting
executions with their outputs, and the SQL of execution schedules. The admin resources (resource
groups, tokens, secrets, object stores) are :mod:`orchestrator.store.admin_records`, a base of
:class:`ApiRecords`. A mixin of :class:`~orchestrator.store.sqlite.SqliteStore` (uses its ``db``,
``transaction`` and ``_one``). Every read of a resource-group object takes the group: an id from
another group is NotFound.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from orchestrator.errors import NotFound
from orchestrator.store import now_iso
from orchestrator.store.admin_records import AdminRecords, Row


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _cols(cols: str) -> list[str]:
    return [c.strip() for c in cols.split(",")]


class Query:
    """A scoped SELECT built from optional filters (values always bound, never interpolated)."""

    def __init__(self, table: str, rg: str, extra: str = "") -> None:
        self.table = table
        self.where = ["rg=?"] + ([extra] if extra else [])
        self.args: list[Any] = [rg]

    def eq(self, col: str, value: Any) -> Query:
        if value not in (None, ""):
            self.where.append(f"{col}=?")
            self.args.append(value)
        return self

    def any_of(self, col: str, values: Sequence[str] | None) -> Query:
        if values:
            self.where.append(f"{col} IN ({','.join('?' * len(values))})")
            self.args.extend(values)
        return self

    def search(self, cols: Sequence[str], text: str | None, case_insensitive: bool = False) -> Query:
        if text:
            op = "LIKE" if case_insensitive else "GLOB"
            pattern = _like(text) if case_insensitive else "*" + "".join(
                f"[{c}]" if c in "*?[]" else c for c in text) + "*"
            esc = " ESCAPE '\\'" if case_insensitive else ""
            self.where.append("(" + " OR ".join(f"COALESCE({c},'') {op} ?{esc}" for c in cols) + ")")
            self.args.extend([pattern] * len(cols))
        return self

    def sql(self, cols: str, order: str = "created_at DESC, id") -> tuple[str, list[Any]]:
        return f"SELECT {cols} FROM {self.table} WHERE {' AND '.join(self.where)} ORDER BY {order}", self.args

    def count_sql(self) -> tuple[str, list[Any]]:
        return f"SELECT COUNT(*) FROM {self.table} WHERE {' AND '.join(self.where)}", self.args


class ApiRecords(AdminRecords):
    """Catalog listings, executions and schedules; the admin records through :class:`AdminRecords`
    (whose ``db``, ``transaction`` and ``_one`` SqliteStore provides)."""

    # ------------------------------------------------------------------ generic
    def _rows(self, sql: str, args: Sequence[Any]) -> list[Row]:
        cur = self.db.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur]

    def run_query(self, q: Query, cols: str, *, limit: int = 10000, offset: int = 0,
                  order: str = "created_at DESC, id") -> list[Row]:
        sql, args = q.sql(cols, order)
        return self._rows(sql + " LIMIT ? OFFSET ?", [*args, limit, offset])

    def count_query(self, q: Query) -> int:
        sql, args = q.count_sql()
        return int(self.db.execute(sql, args).fetchone()[0])

    _PREFIX: ClassVar[dict[str, tuple[str, str]]] = {
        "executions": ("deleted_at IS NULL", "status || '  ' || executable_id"),
        "artifacts": ("", "name || ' (' || kind || ')'"), "configurations": ("", "name"),
        "execution_schedules": ("deleted_at IS NULL", "name || '  ' || cron")}

    def ids_with_prefix(self, rg: str, table: str, prefix: str, limit: int = 11) -> list[Row]:
        """``id``, ``what`` (a short description) and ``created_at`` of the rows of ``table`` (executions,
        artifacts, configurations, execution_schedules) in ``rg`` whose id starts with ``prefix``, oldest first."""
        extra, what = self._PREFIX[table]
        q = Query(table, rg, extra)
        q.where.append("substr(id, 1, ?) = ?")
        q.args.extend([len(prefix), prefix])
        return self.run_query(q, f"id, {what} AS what, created_at", limit=limit, order="created_at, id")

    # ------------------------------------------------------------------ catalog
    def list_scenarios(self, rg: str) -> list[Row]:
        return self._rows("""SELECT id, name, description, labels, created_at, modified_at FROM scenarios
                             WHERE rg=? ORDER BY id""", (rg,))

    def get_scenario(self, rg: str, scenario_id: str) -> Row:
        rows = self._rows("""SELECT id, name, description, labels, created_at, modified_at FROM scenarios
                             WHERE rg=? AND id=?""", (rg, scenario_id))
        if not rows:
            raise NotFound(f"scenario {scenario_id!r} not found")
        return rows[0]

    def list_versions(self, rg: str, scenario_id: str) -> list[Row]:
        self.get_scenario(rg, scenario_id)
        return self._rows("""SELECT id, scenario_id, description, created_at, modified_at FROM versions
                             WHERE rg=? AND scenario_id=? ORDER BY created_at, id""", (rg, scenario_id))

    def executable_ids(self, rg: str, scenario_id: str, version_id: str | None = None) -> list[str]:
        self.get_scenario(rg, scenario_id)
        q = Query("executables", rg, "gone_at IS NULL").eq("scenario_id", scenario_id).eq("version_id", version_id)
        return [r["id"] for r in self.run_query(q, "id", order="id")]

    # ------------------------------------------------------------------ configurations
    CONFIG_COLS = "id, name, scenario_id, executable_id, parameter_bindings, input_artifact_bindings, created_at"

    def query_configurations(self, rg: str, *, scenario_id: str | None = None,
                             executable_ids: Sequence[str] | None = None, search: str | None = None,
                             case_insensitive: bool = False) -> Query:
        return (Query("configurations", rg).eq("scenario_id", scenario_id).any_of("executable_id", executable_ids)
                .search(("name", "id", "executable_id"), search, case_insensitive))

    # ------------------------------------------------------------------ artifacts
    ARTIFACT_COLS = """id, name, kind, url, scenario_id, description, labels, created_at, modified_at,
                       execution_id, configuration_id"""

    def query_artifacts(self, rg: str, *, scenario_id: str | None = None, execution_id: str | None = None,
                        name: str | None = None, kind: str | None = None, search: str | None = None,
                        case_insensitive: bool = False,
                        label_selector: Sequence[tuple[str, str, bool]] = ()) -> Query:
        q = (Query("artifacts", rg).eq("scenario_id", scenario_id).eq("execution_id", execution_id)
             .eq("name", name).eq("kind", kind).search(("name", "description", "url"), search, case_insensitive))
        for key, value, equal in label_selector:
            q.where.append(("" if equal else "NOT ") + "EXISTS (SELECT 1 FROM json_each(artifacts.labels) "
                           "WHERE json_extract(value, '$[0]')=? AND json_extract(value, '$[1]')=?)")
            q.args.extend([key, value])
        return q

    # ------------------------------------------------------------------ executions
    EXECUTION_COLS = """id, configuration_id, configuration_name, scenario_id, executable_id, status, target_status,
                        status_message, status_details, created_at, modified_at, submission_time, start_time,
                        completion_time, execution_schedule_id, schedule_slot, commit_sha, parent_execution_id"""

    def query_executions(self, rg: str, *, scenario_id: str | None = None, configuration_id: str | None = None,
                         executable_ids: Sequence[str] | None = None, schedule_id: str | None = None,
                         status: str | None = None) -> Query:
        return (Query("executions", rg, "deleted_at IS NULL").eq("scenario_id", scenario_id)
                .eq("configuration_id", configuration_id).any_of("executable_id", executable_ids)
                .eq("execution_schedule_id", schedule_id).eq("status", status))

    _EXECUTION_NAMES = _cols(EXECUTION_COLS)
    _ARTIFACT_NAMES = _cols(ARTIFACT_COLS)
    _EXECUTION_WITH_OUTPUTS = (
        f"SELECT {', '.join('e.' + c for c in _EXECUTION_NAMES)}, {', '.join('a.' + c for c in _ARTIFACT_NAMES)} "
        "FROM executions e LEFT JOIN artifacts a ON a.execution_id=e.id AND +a.rg=e.rg "
        "WHERE e.rg=? AND e.id=? AND e.deleted_at IS NULL ORDER BY a.created_at, a.id")

    def execution_row(self, rg: str, execution_id: str) -> Row:
        rows = self._rows(f"SELECT {self.EXECUTION_COLS} FROM executions WHERE rg=? AND id=? AND deleted_at IS NULL",
                          (rg, execution_id))
        if not rows:
            raise NotFound(f"execution {execution_id!r} not found")
        return rows[0]

    def execution_with_outputs(self, rg: str, execution_id: str) -> tuple[Row, list[Row]]:
        """:meth:`execution_row` and its :meth:`output_artifacts` in one statement (what clients poll).

        ``+a.rg`` keeps SQLite on the ``artifacts(execution_id)`` index rather than scanning the
        group's artifacts through ``artifacts(rg, created_at)``.
        """
        e_cols, a_cols = self._EXECUTION_NAMES, self._ARTIFACT_NAMES
        rows = self.db.execute(self._EXECUTION_WITH_OUTPUTS, (rg, execution_id)).fetchall()
        if not rows:
            raise NotFound(f"execution {execution_id!r} not found")
        n = len(e_cols)
        outputs = [dict(zip(a_cols, r[n:])) for r in rows if r[n] is not None]
        return dict(zip(e_cols, rows[0][:n])), outputs

    def delete_execution(self, rg: str, execution_id: str) -> None:
        """Hide an execution from every read (its rows stay for provenance of its artifacts)."""
        with self.transaction() as db:
            cur = db.execute("UPDATE executions SET deleted_at=?, target_status='DELETED', modified_at=? "
                             "WHERE rg=? AND id=? AND deleted_at IS NULL", (now_iso(), now_iso(), rg, execution_id))
            if cur.rowcount == 0:
                raise NotFound(f"execution {execution_id!r} not found")

    def output_artifacts(self, rg: str, execution_ids: Sequence[str]) -> dict[str, list[Row]]:
        out: dict[str, list[Row]] = {}
        if not execution_ids:
            return out
        q = Query("artifacts", rg).any_of("execution_id", list(execution_ids))
        for r in self.run_query(q, self.ARTIFACT_COLS, order="created_at, id"):
            out.setdefault(r["execution_id"], []).append(r)
        return out

    def delete_metrics(self, rg: str, execution_id: str) -> None:
        with self.transaction() as db:
            self.execution_row(rg, execution_id)
            for table in ("metrics", "tags", "custom_info", "metric_batches"):
                db.execute(f"DELETE FROM {table} WHERE execution_id=?", (execution_id,))

    # ------------------------------------------------------------------ execution schedules
    SCHEDULE_COLS = """id, name, cron, configuration_id, start, end, status, timezone, catchup, max_catchup,
                       concurrency, slot_parameter, last_slot, source, created_at, modified_at"""
    SCHEDULE_FIELDS = frozenset({"name", "cron", "configuration_id", "start", "end", "status", "timezone", "catchup",
                                 "max_catchup", "concurrency", "slot_parameter", "source", "last_slot"})

    def create_schedule(self, rg: str, *, name: str, cron: str, configuration_id: str, start: str | None = None,
                        end: str | None = None, status: str = "ACTIVE", timezone: str = "UTC",
                        catchup: str = "latest", max_catchup: int = 1, concurrency: str = "Allow",
                        slot_parameter: str | None = None, source: str | None = None,
                        schedule_id: str | None = None) -> Row:
        sid = schedule_id or str(uuid.uuid4())
        now = now_iso()
        with self.transaction() as db:
            db.execute("""INSERT INTO execution_schedules(rg, id, name, cron, configuration_id, start, end, status,
                          timezone, catchup, max_catchup, concurrency, slot_parameter, source, created_at,
                          modified_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                       (rg, sid, name, cron, configuration_id, start, end, status, timezone, catchup, max_catchup,
                        concurrency, slot_parameter, source, now, now))
        return self.get_schedule(rg, sid)

    def get_schedule(self, rg: str, schedule_id: str) -> Row:
        rows = self._rows(f"SELECT {self.SCHEDULE_COLS} FROM execution_schedules WHERE rg=? AND id=? "
                          "AND deleted_at IS NULL", (rg, schedule_id))
        if not rows:
            raise NotFound(f"execution schedule {schedule_id!r} not found")
        return rows[0]

    def query_schedules(self, rg: str, *, configuration_id: str | None = None, status: str | None = None) -> Query:
        return Query("execution_schedules", rg, "deleted_at IS NULL").eq("configuration_id", configuration_id) \
            .eq("status", status)

    def list_schedules(self, rg: str, *, configuration_id: str | None = None, status: str | None = None,
                       limit: int = 100, offset: int = 0) -> list[Row]:
        return self.run_query(self.query_schedules(rg, configuration_id=configuration_id, status=status),
                              self.SCHEDULE_COLS, limit=limit, offset=offset)

    def update_schedule(self, rg: str, schedule_id: str, **fields: Any) -> Row:
        unknown = set(fields) - self.SCHEDULE_FIELDS
        if unknown:
            raise NotFound(f"unknown schedule field(s) {sorted(unknown)}")
        with self.transaction() as db:
            self.get_schedule(rg, schedule_id)
            if fields:
                sets = ", ".join(f"{k}=?" for k in sorted(fields))
                db.execute(f"UPDATE execution_schedules SET {sets}, modified_at=? WHERE rg=? AND id=?",
                           (*[fields[k] for k in sorted(fields)], now_iso(), rg, schedule_id))
        return self.get_schedule(rg, schedule_id)

    def delete_schedule(self, rg: str, schedule_id: str) -> None:
        with self.transaction() as db:
            self.get_schedule(rg, schedule_id)
            db.execute("UPDATE execution_schedules SET deleted_at=?, status='INACTIVE', modified_at=? "
                       "WHERE rg=? AND id=?", (now_iso(), now_iso(), rg, schedule_id))


__all__ = ["ApiRecords", "Query", "Row", "Iterator"]
