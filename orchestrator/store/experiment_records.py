"""Store records of experiments and models: per-metric summaries, compare reads, the model registry.

Owns: the SQL of ``metric_summaries`` (one row per (execution, metric): last value and step, min
and max with the step each was first reached, point count), kept up to date by
:func:`upsert_summaries` in the very transaction that inserts the points (called from
:mod:`~orchestrator.store.metric_records`), so compare reads summaries and never scans a series;
the one-query reads compare needs; and the registry tables (registered models, numbered
versions, aliases). An alias move is one ``BEGIN IMMEDIATE`` transaction: an alias always names
exactly one existing version. A mixin of :class:`~orchestrator.store.sqlite.SqliteStore` (uses its
``db`` and ``transaction``); every read is scoped by resource group.

Must not import: spec, plan, run, git, control, api, cli (store layer: model and errors only).
Name rules (what a model or alias may be called) are the control layer's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.errors import Conflict, NotFound
from orchestrator.model import MetricPoint
from orchestrator.store import now_iso
from orchestrator.store.codec import j as _j
from orchestrator.store.codec import pairs as _pairs

SUMMARY_COLS = "execution_id, name, last, last_step, min, min_step, max, max_step, count"


@dataclass(frozen=True)
class ModelVersion:
    """One version of a registered model: a ``model`` artifact of a COMPLETED execution."""

    rg: str
    model: str
    version: int
    artifact_id: str
    sha256: str
    execution_id: str
    description: str
    tags: tuple[tuple[str, str], ...]
    created_at: str
    modified_at: str
    aliases: tuple[str, ...] = ()


# ---------------------------------------------------------------------- summaries (called at ingest)
def upsert_summaries(db: sqlite3.Connection, execution_id: str, points: Sequence[MetricPoint]) -> None:
    """Fold ``points`` (in logged order) into the execution's summary rows: one upsert per metric
    name of the batch. Min and max keep the step at which they were *first* reached."""
    batch: dict[str, list[Any]] = {}
    for p in points:
        b = batch.get(p.name)
        if b is None:  # last, last_step, min, min_step, max, max_step, count
            batch[p.name] = [p.value, p.step, p.value, p.step, p.value, p.step, 1]
            continue
        b[0], b[1] = p.value, p.step
        if p.value < b[2]:
            b[2], b[3] = p.value, p.step
        if p.value > b[4]:
            b[4], b[5] = p.value, p.step
        b[6] += 1
    if not batch:
        return
    # SET expressions all see the old row, so the order of assignments does not matter.
    db.executemany(f"""INSERT INTO metric_summaries({SUMMARY_COLS}) VALUES (?,?,?,?,?,?,?,?,?)
                       ON CONFLICT(execution_id, name) DO UPDATE SET
                       last=excluded.last, last_step=excluded.last_step,
                       min_step=CASE WHEN excluded.min < min THEN excluded.min_step ELSE min_step END,
                       min=MIN(min, excluded.min),
                       max_step=CASE WHEN excluded.max > max THEN excluded.max_step ELSE max_step END,
                       max=MAX(max, excluded.max), count=count + excluded.count""",
                   [(execution_id, name, *b) for name, b in batch.items()])


def rebuild_summaries(db: sqlite3.Connection, execution_id: str) -> None:
    """Recompute one execution's summaries from its points (after a bulk copy of points)."""
    db.execute("DELETE FROM metric_summaries WHERE execution_id=?", (execution_id,))
    db.execute(f"""INSERT INTO metric_summaries({SUMMARY_COLS})
                   SELECT g.execution_id, g.name,
                     (SELECT value FROM metrics WHERE seq=g.last_seq), (SELECT step FROM metrics WHERE seq=g.last_seq),
                     g.mn, (SELECT step FROM metrics m WHERE m.execution_id=g.execution_id AND m.name=g.name
                            AND m.value=g.mn ORDER BY m.seq LIMIT 1),
                     g.mx, (SELECT step FROM metrics m WHERE m.execution_id=g.execution_id AND m.name=g.name
                            AND m.value=g.mx ORDER BY m.seq LIMIT 1),
                     g.cnt
                   FROM (SELECT execution_id, name, MIN(seq) AS first_seq, MAX(seq) AS last_seq, MIN(value) AS mn,
                         MAX(value) AS mx, COUNT(*) AS cnt FROM metrics WHERE execution_id=?
                         GROUP BY execution_id, name) g
                   ORDER BY g.first_seq""", (execution_id,))


def _summary(r: Sequence[Any]) -> dict[str, Any]:
    return {"name": r[1], "last": r[2], "lastStep": r[3], "min": r[4], "minStep": r[5], "max": r[6],
            "maxStep": r[7], "count": r[8]}


class ExperimentRecords:
    """Metric summaries, compare reads and the model registry."""

    db: sqlite3.Connection

    if TYPE_CHECKING:  # provided by SqliteStore (a stub here would shadow it in ``class _S(ExperimentRecords, SqliteStore)``)
        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    # ------------------------------------------------------------------ compare
    def metric_summaries(self, rg: str, execution_id: str) -> list[dict[str, Any]]:
        """The summaries of one execution, in first-logged order (NotFound outside ``rg``)."""
        if self.db.execute("SELECT 1 FROM executions WHERE rg=? AND id=?", (rg, execution_id)).fetchone() is None:
            raise NotFound(f"execution {execution_id!r} not found")
        rows = self.db.execute(f"SELECT {SUMMARY_COLS} FROM metric_summaries WHERE execution_id=? ORDER BY rowid",
                               (execution_id,))
        return [_summary(r) for r in rows]

    def compare_rows(self, rg: str, *, execution_ids: Sequence[str] = (), scenario_id: str | None = None,
                     executable_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Executions to compare, newest first, each with its parameters (configuration bindings,
        then the execution's extra parameters, then the template's defaults for the rest) and its
        metric summaries: three queries in all, whatever the number of executions."""
        where = "e.rg=? AND e.deleted_at IS NULL"
        args: list[Any] = [rg]
        if execution_ids:
            where += f" AND e.id IN ({','.join('?' * len(execution_ids))})"
            args += list(execution_ids)
        if scenario_id:
            where += " AND e.scenario_id=?"
            args.append(scenario_id)
        if executable_id:
            where += " AND e.executable_id=?"
            args.append(executable_id)
        sel = f"SELECT e.id FROM executions e WHERE {where} ORDER BY e.created_at DESC, e.id LIMIT ?"
        rows = self.db.execute(
            f"""SELECT e.id, e.status, e.scenario_id, e.executable_id, e.created_at, e.start_time, e.completion_time,
                       c.parameter_bindings, e.extra_parameters
                FROM executions e LEFT JOIN configurations c ON c.rg=e.rg AND c.id=e.configuration_id
                WHERE e.id IN ({sel}) ORDER BY e.created_at DESC, e.id""", (*args, limit)).fetchall()
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            params = dict(_pairs(r[7]))
            params.update(_pairs(r[8]))
            out[r[0]] = {"id": r[0], "status": r[1], "scenarioId": r[2], "executableId": r[3], "createdAt": r[4],
                         "startTime": r[5], "completionTime": r[6], "parameters": params, "metrics": []}
        if not out:
            return []
        defaults = self._parameter_defaults(rg, {o["executableId"] for o in out.values()})
        for o in out.values():
            for name, value in defaults.get(o["executableId"], ()):
                if name not in o["parameters"] and value is not None:
                    o["parameters"][name] = value
        # What steps logged with MLflow (``param.<key>`` tags) are parameters too, unless the
        # configuration or template already names one so (those are what the step was given).
        for eid, name, value in self.db.execute(
                f"SELECT execution_id, name, value FROM tags WHERE execution_id IN ({sel}) "
                "AND name >= 'param.' AND name < 'param/'", (*args, limit)):
            out[eid]["parameters"].setdefault(name[len("param."):], value)
        for r in self.db.execute(f"""SELECT {', '.join('s.' + c.strip() for c in SUMMARY_COLS.split(','))}
                                     FROM metric_summaries s WHERE s.execution_id IN ({sel}) ORDER BY s.rowid""",
                                 (*args, limit)):
            out[r[0]]["metrics"].append(_summary(r))
        return list(out.values())

    def _parameter_defaults(self, rg: str, executable_ids: Iterable[str]) -> dict[str, list[tuple[str, Any]]]:
        ids = sorted(executable_ids)
        rows = self.db.execute(f"SELECT id, parameters FROM executables WHERE rg=? AND id IN ({','.join('?' * len(ids))})",
                               (rg, *ids))
        return {r[0]: [(p[0], p[1]) for p in json.loads(r[1] or "[]")] for r in rows}

    # ------------------------------------------------------------------ registry
    _MV_COLS = "rg, model, version, artifact_id, sha256, execution_id, description, tags, created_at, modified_at"

    def _versions(self, where: str, args: Sequence[Any], limit: int = -1, offset: int = 0) -> list[ModelVersion]:
        rows = self.db.execute(f"""SELECT {self._MV_COLS}, (SELECT json_group_array(a.alias) FROM
                                   (SELECT alias FROM model_aliases a WHERE a.rg=v.rg AND a.model=v.model
                                    AND a.version=v.version ORDER BY alias) a)
                                   FROM model_versions v WHERE {where}
                                   ORDER BY v.model, v.version DESC LIMIT ? OFFSET ?""",
                               (*args, limit, offset)).fetchall()
        return [ModelVersion(r[0], r[1], r[2], r[3], r[4], r[5], r[6], _pairs(r[7]), r[8], r[9],
                             tuple(json.loads(r[10] or "[]"))) for r in rows]

    def create_model_version(self, rg: str, model: str, *, artifact_id: str, sha256: str, execution_id: str,
                             description: str = "", tags: Sequence[tuple[str, str]] = ()) -> tuple[ModelVersion, bool]:
        """A new version (numbered 1, 2, ... per model), or the existing one of the same artifact.
        Returns ``(version, created)``."""
        now = now_iso()
        with self.transaction() as db:
            db.execute("""INSERT INTO registered_models(rg, name, created_at, modified_at) VALUES (?,?,?,?)
                          ON CONFLICT(rg, name) DO UPDATE SET modified_at=excluded.modified_at""", (rg, model, now, now))
            old = db.execute("SELECT version FROM model_versions WHERE rg=? AND model=? AND artifact_id=?",
                             (rg, model, artifact_id)).fetchone()
            if old is not None:
                return self.get_model_version(rg, model, old[0]), False
            number = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE rg=? AND model=?",
                                (rg, model)).fetchone()[0]
            db.execute(f"INSERT INTO model_versions({self._MV_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (rg, model, number, artifact_id, sha256, execution_id, description,
                        _j([list(t) for t in tags]), now, now))
        return self.get_model_version(rg, model, number), True

    def get_model_version(self, rg: str, model: str, version: int | None = None) -> ModelVersion:
        """One version (the latest when ``version`` is None); NotFound names what is missing."""
        if version is None:
            found = self._versions("v.rg=? AND v.model=?", (rg, model), 1)
        else:
            found = self._versions("v.rg=? AND v.model=? AND v.version=?", (rg, model, version))
        if not found:
            self.get_model(rg, model)
            raise NotFound(f"model {model!r} has no version {version}")
        return found[0]

    def list_model_versions(self, rg: str, model: str | None = None, *, execution_id: str | None = None,
                            limit: int = -1, offset: int = 0) -> list[ModelVersion]:
        where, args = "v.rg=?", [rg]
        if model is not None:
            where += " AND v.model=?"
            args.append(model)
        if execution_id is not None:
            where += " AND v.execution_id=?"
            args.append(execution_id)
        return self._versions(where, args, limit, offset)

    def _model_query(self, rg: str, execution_id: str | None) -> tuple[str, list[Any]]:
        where, args = "m.rg=?", [rg]
        if execution_id is not None:
            where += " AND EXISTS (SELECT 1 FROM model_versions v WHERE v.rg=m.rg AND v.model=m.name AND v.execution_id=?)"
            args.append(execution_id)
        return where, args

    def list_models(self, rg: str, *, execution_id: str | None = None, limit: int = -1,
                    offset: int = 0) -> list[dict[str, Any]]:
        """Registered models (by name), each with its latest version, version count and aliases."""
        where, args = self._model_query(rg, execution_id)
        names = [r[0] for r in self.db.execute(f"SELECT m.name FROM registered_models m WHERE {where} "
                                               "ORDER BY m.name LIMIT ? OFFSET ?", (*args, limit, offset))]
        return [self.get_model(rg, n) for n in names]

    def count_models(self, rg: str, *, execution_id: str | None = None) -> int:
        where, args = self._model_query(rg, execution_id)
        return int(self.db.execute(f"SELECT COUNT(*) FROM registered_models m WHERE {where}", args).fetchone()[0])

    def get_model(self, rg: str, model: str) -> dict[str, Any]:
        r = self.db.execute("""SELECT name, description, created_at, modified_at,
                               (SELECT MAX(version) FROM model_versions v WHERE v.rg=m.rg AND v.model=m.name),
                               (SELECT COUNT(*) FROM model_versions v WHERE v.rg=m.rg AND v.model=m.name)
                               FROM registered_models m WHERE rg=? AND name=?""", (rg, model)).fetchone()
        if r is None:
            raise NotFound(f"model {model!r} not found in resource group {rg!r}")
        aliases = dict(self.db.execute("SELECT alias, version FROM model_aliases WHERE rg=? AND model=? ORDER BY alias",
                                       (rg, model)).fetchall())
        return {"name": r[0], "description": r[1], "createdAt": r[2], "modifiedAt": r[3], "latestVersion": r[4],
                "versionCount": r[5], "aliases": aliases}

    def update_model_version(self, rg: str, model: str, version: int, *, description: str | None = None,
                             tags: Sequence[tuple[str, str]] | None = None) -> ModelVersion:
        """Set the description and/or merge tags (a tag with an empty value is removed)."""
        with self.transaction() as db:
            mv = self.get_model_version(rg, model, version)
            merged = dict(mv.tags)
            for k, v in tags or ():
                if v:
                    merged[k] = v
                else:
                    merged.pop(k, None)
            db.execute("UPDATE model_versions SET description=?, tags=?, modified_at=? "
                       "WHERE rg=? AND model=? AND version=?",
                       (mv.description if description is None else description,
                        _j([list(t) for t in sorted(merged.items())]), now_iso(), rg, model, version))
        return self.get_model_version(rg, model, version)

    def set_model_alias(self, rg: str, model: str, alias: str, version: int, *,
                        expected: int | None = None) -> int | None:
        """Point ``alias`` at ``version`` (one transaction) and return the version it named before.
        With ``expected``, move only if the alias still names that version (else :class:`Conflict`:
        someone moved it since; read again and retry)."""
        with self.transaction() as db:
            self.get_model_version(rg, model, version)
            row = db.execute("SELECT version FROM model_aliases WHERE rg=? AND model=? AND alias=?",
                             (rg, model, alias)).fetchone()
            before = None if row is None else int(row[0])
            if expected is not None and before != expected:
                raise Conflict(f"alias {alias!r} of model {model!r} names version {before} now, not {expected}",
                               hint="someone moved it meanwhile; read it again and retry")
            db.execute("""INSERT INTO model_aliases(rg, model, alias, version, modified_at) VALUES (?,?,?,?,?)
                          ON CONFLICT(rg, model, alias) DO UPDATE SET version=excluded.version,
                          modified_at=excluded.modified_at""", (rg, model, alias, version, now_iso()))
            return before

    def delete_model_alias(self, rg: str, model: str, alias: str) -> int:
        """Remove ``alias``; returns the version it named (NotFound if it names none)."""
        with self.transaction() as db:
            self.get_model(rg, model)
            row = db.execute("SELECT version FROM model_aliases WHERE rg=? AND model=? AND alias=?",
                             (rg, model, alias)).fetchone()
            if row is None:
                raise NotFound(f"model {model!r} has no alias {alias!r}")
            db.execute("DELETE FROM model_aliases WHERE rg=? AND model=? AND alias=?", (rg, model, alias))
            return int(row[0])

    def model_alias(self, rg: str, model: str, alias: str) -> ModelVersion:
        """The version ``alias`` names (NotFound if none)."""
        row = self.db.execute("SELECT version FROM model_aliases WHERE rg=? AND model=? AND alias=?",
                              (rg, model, alias)).fetchone()
        if row is None:
            self.get_model(rg, model)
            raise NotFound(f"model {model!r} has no alias {alias!r}")
        return self.get_model_version(rg, model, int(row[0]))
