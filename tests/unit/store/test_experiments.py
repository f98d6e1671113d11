"""Experiment records: metric summaries kept at ingest equal a scan of the series, the migration's
backfill, compare reads, and the registry's alias moves under concurrent writers."""

from __future__ import annotations

import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import Conflict, NotFound
from orchestrator.model import MetricPoint
from orchestrator.store.schema import MIGRATIONS
from orchestrator.store.sqlite import SqliteStore

RG = "default"


def _store(path: Path) -> SqliteStore:
    return SqliteStore(str(path / "o.db"))


def _execution(s: SqliteStore, tmp: Path, params: list[tuple[str, str]] | None = None, scenario: str = "scen",
               executable: str = "exe") -> str:
    s.ensure_resource_group(RG)
    cfg = s.create_configuration(RG, "c", scenario, executable, params or [], [])
    return s.create_execution(RG, cfg, str(tmp)).id


def _scan(points: list[MetricPoint]) -> dict[str, dict[str, Any]]:
    """What a full scan of the series gives (the reference the summaries must equal)."""
    out: dict[str, dict[str, Any]] = {}
    for p in points:
        m = out.setdefault(p.name, {"name": p.name, "count": 0, "min": p.value, "minStep": p.step,
                                    "max": p.value, "maxStep": p.step})
        m["count"] += 1
        m["last"], m["lastStep"] = p.value, p.step
        if p.value < m["min"]:
            m["min"], m["minStep"] = p.value, p.step
        if p.value > m["max"]:
            m["max"], m["maxStep"] = p.value, p.step
    return out


@pytest.mark.parametrize("seed", range(6))
def test_summaries_equal_a_scan_of_random_series(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    s = _store(tmp_path)
    eid = _execution(s, tmp_path)
    logged: list[MetricPoint] = []
    for b in range(rnd.randint(1, 8)):  # several batches, both ingestion paths, repeated values
        batch = [MetricPoint(eid, rnd.choice("abc"), float(rnd.randint(-5, 5)), "t",
                             rnd.choice([None, rnd.randint(0, 50)]), ()) for _ in range(rnd.randint(0, 30))]
        if b % 2:
            s.add_metrics(RG, eid, f"b{b}", batch)
        else:
            s.add_tracked(RG, eid, f"step:{b}", 10, [(i, "metric", p) for i, p in enumerate(batch)])
        logged += batch
    s.add_metrics(RG, eid, "dup", logged[:3])
    logged += logged[:3]
    got = {m["name"]: m for m in s.metric_summaries(RG, eid)}
    assert got == _scan(logged)
    assert [m["name"] for m in s.metric_summaries(RG, eid)] == list(dict.fromkeys(p.name for p in logged))
    assert not s.add_metrics(RG, eid, "dup", logged[:3])  # a replayed batch id changes nothing
    assert {m["name"]: m for m in s.metric_summaries(RG, eid)} == got


def test_copy_step_metrics_rebuilds_the_target_summaries(tmp_path: Path) -> None:
    s = _store(tmp_path)
    a, b = _execution(s, tmp_path), _execution(s, tmp_path)
    pts = [MetricPoint(a, "loss", v, "t", i, ()) for i, v in enumerate([0.5, 0.2, 0.4])]
    s.add_tracked(RG, a, "train:0", 3, [(i, "metric", p) for i, p in enumerate(pts)])
    s.add_metrics(RG, b, "x", [MetricPoint(b, "loss", 0.9, "t", 7, ())])
    s.copy_step_metrics(RG, a, "train", b, "train")
    [m] = s.metric_summaries(RG, b)
    assert (m["count"], m["min"], m["minStep"], m["max"], m["maxStep"]) == (4, 0.2, 1, 0.9, 7)


def test_migration_backfills_summaries_of_existing_points(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path, isolation_level=None)
    before = 4  # a store from before experiments (v5 added the summaries)
    for stmts in MIGRATIONS[:before]:
        for stmt in stmts:
            db.execute(stmt)
    db.execute(f"PRAGMA user_version={before}")
    db.execute("INSERT INTO executions(id, rg, configuration_id, scenario_id, executable_id, status, target_status,"
               " created_at, modified_at) VALUES ('e1','default','c','s','x','COMPLETED','COMPLETED','t','t')")
    values = [(3.0, 0), (1.0, 1), (2.0, 2), (1.0, 3), (5.0, None), (4.0, 5)]
    db.executemany("INSERT INTO metrics(execution_id, name, value, timestamp, step) VALUES ('e1','m',?,'t',?)", values)
    db.execute("INSERT INTO metrics(execution_id, name, value, timestamp, step) VALUES ('e1','first',7,'t',1)")
    db.close()
    s = SqliteStore(path)
    got = s.metric_summaries(RG, "e1")
    want = _scan([MetricPoint("e1", "m", v, "t", st, ()) for v, st in values])
    assert got[0] == want["m"] and got[1]["name"] == "first"  # order: first-logged (seq)
    s.delete_metrics(RG, "e1")
    assert s.metric_summaries(RG, "e1") == []  # the trigger drops summaries with their points


def test_compare_rows_one_query_shape(tmp_path: Path) -> None:
    s = _store(tmp_path)
    e1 = _execution(s, tmp_path, [("lr", "0.1"), ("depth", "3")])
    e2 = _execution(s, tmp_path, [("lr", "0.2"), ("depth", "3")], executable="other")
    _execution(s, tmp_path, [("lr", "9")], scenario="elsewhere")
    s.add_metrics(RG, e1, "", [MetricPoint(e1, "auc", 0.8, "t", 1, ())])
    rows = s.compare_rows(RG, scenario_id="scen")
    assert {r["id"] for r in rows} == {e1, e2}
    by = {r["id"]: r for r in rows}
    assert by[e1]["parameters"] == {"lr": "0.1", "depth": "3"} and by[e1]["metrics"][0]["last"] == 0.8
    assert [r["id"] for r in s.compare_rows(RG, executable_id="other")] == [e2]
    assert [r["id"] for r in s.compare_rows(RG, execution_ids=[e1])] == [e1]
    assert s.compare_rows("other-group", execution_ids=[e1]) == []
    assert len(s.compare_rows(RG, scenario_id="scen", limit=1)) == 1


def _registered(s: SqliteStore, tmp: Path, n: int = 3) -> str:
    eid = _execution(s, tmp)
    for i in range(n):
        s.create_model_version(RG, "m", artifact_id=f"a{i}", sha256=f"{i:064x}", execution_id=eid)
    return eid


def test_versions_numbered_idempotent_per_artifact_and_scoped(tmp_path: Path) -> None:
    s = _store(tmp_path)
    eid = _registered(s, tmp_path)
    again, created = s.create_model_version(RG, "m", artifact_id="a1", sha256="x", execution_id=eid)
    assert (again.version, created) == (2, False)
    assert [v.version for v in s.list_model_versions(RG, "m")] == [3, 2, 1]
    assert s.get_model_version(RG, "m").version == 3
    assert [v.version for v in s.list_model_versions(RG, execution_id=eid)] == [3, 2, 1]
    with pytest.raises(NotFound):
        s.get_model_version("other", "m", 1)
    with pytest.raises(NotFound, match="no version 9"):
        s.get_model_version(RG, "m", 9)
    with pytest.raises(NotFound):
        s.set_model_alias(RG, "m", "champion", 9)
    upd = s.update_model_version(RG, "m", 2, description="d", tags=[("k", "v"), ("z", "1")])
    assert (upd.description, upd.tags) == ("d", (("k", "v"), ("z", "1")))
    assert s.update_model_version(RG, "m", 2, tags=[("z", "")]).tags == (("k", "v"),)


def test_alias_moves_and_compare_and_set(tmp_path: Path) -> None:
    s = _store(tmp_path)
    _registered(s, tmp_path)
    assert s.set_model_alias(RG, "m", "champion", 1) is None
    assert s.set_model_alias(RG, "m", "champion", 2, expected=1) == 1
    with pytest.raises(Conflict, match="names version 2 now"):
        s.set_model_alias(RG, "m", "champion", 3, expected=1)
    assert s.model_alias(RG, "m", "champion").version == 2
    assert s.get_model_version(RG, "m", 2).aliases == ("champion",)
    assert s.delete_model_alias(RG, "m", "champion") == 2
    with pytest.raises(NotFound):
        s.delete_model_alias(RG, "m", "champion")


def test_alias_under_two_concurrent_writers(tmp_path: Path) -> None:
    """Two connections hammer one alias; a third reads: it always names exactly one existing
    version, nothing fails with a sqlite error, and a stale compare-and-set is a clear Conflict."""
    s = _store(tmp_path)
    _registered(s, tmp_path, 4)
    s.set_model_alias(RG, "m", "champion", 1)
    errors: list[BaseException] = []
    conflicts = [0, 0]
    stop = threading.Event()

    def writer(k: int) -> None:
        w = SqliteStore(s.path)
        rnd = random.Random(k)
        try:
            for _ in range(150):
                cur = w.model_alias(RG, "m", "champion").version
                try:
                    w.set_model_alias(RG, "m", "champion", rnd.randint(1, 4), expected=cur)
                except Conflict:
                    conflicts[k] += 1
                w.set_model_alias(RG, "m", "champion", rnd.randint(1, 4))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            w.close()

    def reader() -> None:
        r = SqliteStore(s.path)
        try:
            while not stop.is_set():
                rows = r.db.execute("SELECT a.version FROM model_aliases a JOIN model_versions v ON "
                                    "v.rg=a.rg AND v.model=a.model AND v.version=a.version "
                                    "WHERE a.model='m' AND a.alias='champion'").fetchall()
                assert len(rows) == 1 and 1 <= rows[0][0] <= 4
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            r.close()

    threads = [threading.Thread(target=writer, args=(k,)) for k in (0, 1)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads[:2]:
        t.join(60)
    stop.set()
    threads[2].join(10)
    assert not errors, errors
    assert s.get_model(RG, "m")["aliases"].keys() == {"champion"}
