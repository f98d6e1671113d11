"""Store records of metrics, tags and custom info (what steps and ``PATCH /v2/lm/metrics`` log).

Owns: their SQL: batches stored exactly once (a batch id, or a per-source byte watermark for
tracking files), metrics appended (with their per-metric summaries, in the same transaction:
see :mod:`~orchestrator.store.experiment_records`), tags and custom info upserted by name, and the copy a cache
hit or resumed step brings along. A mixin of :class:`~orchestrator.store.sqlite.SqliteStore`
(uses its ``db``, ``transaction`` and ``_status``); every read checks the execution's group.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from orchestrator.model import MetricPoint, Status
from orchestrator.store.codec import j as _j
from orchestrator.store.codec import pairs as _pairs
from orchestrator.store.experiment_records import rebuild_summaries, upsert_summaries


class MetricRecords:
    """Metrics, tags and custom info of executions."""

    db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...  # provided by SqliteStore
    def _status(self, rg: str, execution_id: str) -> Status: ...  # provided by SqliteStore

    def add_metrics(self, rg: str, execution_id: str, batch_id: str, metrics: Sequence[MetricPoint],
                    tags: Sequence[tuple[str, str]] = (), custom_info: Sequence[tuple[str, str]] = ()) -> bool:
        """Store one batch atomically; a batch id seen before is ignored (returns False)."""
        with self.transaction() as db:
            self._status(rg, execution_id)
            if batch_id:
                cur = db.execute("INSERT OR IGNORE INTO metric_batches(execution_id, batch_id) VALUES (?,?)",
                                 (execution_id, batch_id))
                if cur.rowcount == 0:
                    return False
            self._insert_metrics(db, execution_id, metrics, tags, custom_info)
        return True

    def add_tracked(self, rg: str, execution_id: str, source: str, end: int,
                    items: Sequence[tuple[int, str, Any]]) -> int:
        """Store lines of a step's tracking file read up to byte ``end``; exactly once per line.

        ``items`` are ``(line offset, kind, payload)`` with kind ``metric`` (a MetricPoint),
        ``tag`` or ``info`` (a (name, value) pair). A watermark per source makes a re-read of
        any range harmless (e.g. after a runner restart). Returns the number of new records.
        """
        with self.transaction() as db:
            self._status(rg, execution_id)
            row = db.execute("SELECT upto FROM metric_batches WHERE execution_id=? AND batch_id=?",
                             (execution_id, source)).fetchone()
            upto = (row[0] or 0) if row else 0
            if upto >= end:
                return 0
            fresh = [(kind, payload) for off, kind, payload in items if off >= upto]
            self._insert_metrics(db, execution_id, [p for k, p in fresh if k == "metric"],
                                 [p for k, p in fresh if k == "tag"], [p for k, p in fresh if k == "info"],
                                 node_id=source.rsplit(":", 1)[0])
            db.execute("INSERT INTO metric_batches(execution_id, batch_id, upto) VALUES (?,?,?) "
                       "ON CONFLICT(execution_id, batch_id) DO UPDATE SET upto=excluded.upto",
                       (execution_id, source, end))
        return len(fresh)

    def _insert_metrics(self, db: sqlite3.Connection, execution_id: str, metrics: Sequence[MetricPoint],
                        tags: Sequence[tuple[str, str]], custom_info: Sequence[tuple[str, str]],
                        node_id: str | None = None) -> None:
        db.executemany("INSERT INTO metrics(execution_id, name, value, timestamp, step, labels, node_id) "
                       "VALUES (?,?,?,?,?,?,?)",
                       [(execution_id, m.name, m.value, m.timestamp, m.step, _j(list(m.labels)), node_id)
                        for m in metrics])
        upsert_summaries(db, execution_id, metrics)  # same transaction: compare never scans a series
        db.executemany("INSERT INTO tags(execution_id, name, value, node_id) VALUES (?,?,?,?) "
                       "ON CONFLICT(execution_id, name) DO UPDATE SET value=excluded.value, node_id=excluded.node_id",
                       [(execution_id, k, v, node_id) for k, v in tags])
        db.executemany("INSERT INTO custom_info(execution_id, name, value) VALUES (?,?,?) "
                       "ON CONFLICT(execution_id, name) DO UPDATE SET value=excluded.value",
                       [(execution_id, k, v) for k, v in custom_info])

    def copy_step_metrics(self, rg: str, from_execution: str, from_node: str, to_execution: str,
                          to_node: str) -> int:
        """Copy the metric points and tags (MLflow params included) a step logged: a cache hit or a
        resumed step brings them along. The orchestrator's own ``orchestrator/...`` tags stay behind
        (they name the other execution's artifacts). Returns the number of points copied."""
        with self.transaction() as db:
            for eid in (from_execution, to_execution):
                self._status(rg, eid)
            db.execute("""INSERT INTO tags(execution_id, name, value, node_id)
                          SELECT ?, name, value, ? FROM tags WHERE execution_id=? AND node_id=?
                            AND name NOT LIKE 'orchestrator/%'
                          ON CONFLICT(execution_id, name) DO UPDATE SET value=excluded.value,
                            node_id=excluded.node_id""", (to_execution, to_node, from_execution, from_node))
            cur = db.execute("""INSERT INTO metrics(execution_id, name, value, timestamp, step, labels, node_id)
                                SELECT ?, name, value, timestamp, step, labels, ? FROM metrics
                                WHERE execution_id=? AND node_id=? ORDER BY seq""",
                             (to_execution, to_node, from_execution, from_node))
            if cur.rowcount:
                rebuild_summaries(db, to_execution)
            return cur.rowcount

    def get_metrics(self, rg: str, execution_id: str) -> list[MetricPoint]:
        self._status(rg, execution_id)
        rows = self.db.execute("SELECT execution_id, name, value, timestamp, step, labels FROM metrics "
                               "WHERE execution_id=? ORDER BY seq", (execution_id,))
        return [MetricPoint(r[0], r[1], r[2], r[3], r[4], _pairs(r[5])) for r in rows]

    def metric_points(self, rg: str, execution_id: str, name: str) -> list[tuple[str | None, int | None, float]]:
        """``(labels JSON, step, value)`` of one metric in step order (logging order where there is no
        step): a chart's read, one index range, no objects per point."""
        self._status(rg, execution_id)
        return self.db.execute("SELECT labels, step, value FROM metrics WHERE execution_id=? AND name=? "
                               "ORDER BY step, seq", (execution_id, name)).fetchall()

    def step_tracking(self, rg: str, execution_id: str) -> tuple[list[tuple[str | None, MetricPoint]],
                                                                 list[tuple[str | None, str, str]]]:
        """The execution's metric points (in order) and tags, each with the step that logged it
        (None: not logged by a step) — the per-run view of the MLflow endpoint."""
        self._status(rg, execution_id)
        points = [(r[0], MetricPoint(execution_id, r[1], r[2], r[3], r[4])) for r in self.db.execute(
            "SELECT node_id, name, value, timestamp, step FROM metrics WHERE execution_id=? ORDER BY seq",
            (execution_id,))]
        tags = [(r[0], r[1], r[2]) for r in self.db.execute(
            "SELECT node_id, name, value FROM tags WHERE execution_id=? ORDER BY name", (execution_id,))]
        return points, tags

    def get_tags(self, rg: str, execution_id: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        self._status(rg, execution_id)
        tags = [(r[0], r[1]) for r in self.db.execute("SELECT name, value FROM tags WHERE execution_id=? ORDER BY name",
                                                      (execution_id,))]
        info = [(r[0], r[1]) for r in self.db.execute(
            "SELECT name, value FROM custom_info WHERE execution_id=? ORDER BY name", (execution_id,))]
        return tags, info
