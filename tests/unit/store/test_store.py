"""SqliteStore on a real database file: pragmas, resource-group scoping, the status machine,
idempotent metric batches, rollback, concurrent writers from 4 processes, and disk full.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import IllegalTransition, NotFound, StoreError
from orchestrator.model import (
    TERMINAL,
    TRANSITIONS,
    Configuration,
    Execution,
    MetricPoint,
    Status,
    StepRecord,
    StepState,
    WorkflowSpec,
)
from orchestrator.spec import validate_text
from orchestrator.store.schema import MIGRATIONS
from orchestrator.store.sqlite import SqliteStore

TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: store-test
  annotations:
    scenarios.ai.sap.com/name: Store test
    executables.ai.sap.com/name: store-test
  labels:
    scenarios.ai.sap.com/id: store-scenario
    ai.sap.com/version: "1.0"
spec:
  entrypoint: main
  arguments:
    parameters:
      - name: alpha
        value: "0.5"
  templates:
    - name: main
      container:
        image: python:3.11-slim
        command: [python3, -c, "{code}"]
"""


def workflow(code: str = "print(1)") -> WorkflowSpec:
    res = validate_text(TEMPLATE.format(code=code).encode(), "t.yaml")
    assert res.ok, [e.format() for e in res.errors]
    return res.workflows[0]


def points(execution_id: str, n: int, name: str = "loss", start: int = 0) -> list[MetricPoint]:
    return [MetricPoint(execution_id, name, float(i) / 10, "2024-01-01T00:00:00.000000Z", i,
                        (("split", "train"),)) for i in range(start, start + n)]


class Db:
    """A fresh store file plus helpers that create the records a test needs."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.path = str(tmp / "store.db")
        self.store = SqliteStore(self.path)
        self.spec = workflow()

    def configuration(self, rg: str) -> Configuration:
        self.store.register_executable(rg, self.spec, {"doc": 1})
        return self.store.create_configuration(rg, "cfg", self.spec.scenario_id, self.spec.executable_id,
                                               [("alpha", "0.7")], [("data", "ai://default/x")])

    def execution(self, rg: str = "a") -> Execution:
        return self.store.create_execution(rg, self.configuration(rg), str(self.tmp / "work"))

    def walk(self, rg: str, eid: str, *statuses: Status) -> None:
        for s in statuses:
            self.store.set_status(rg, eid, s)

    def count(self, table: str) -> int:
        with sqlite3.connect(self.path) as db:
            return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Db]:
    d = Db(tmp_path)
    yield d
    d.store.close()


# ------------------------------------------------------------------ pragmas


def test_wal_user_version_and_pragmas(db: Db) -> None:
    with sqlite3.connect(db.path) as other:  # persistent settings, seen by any connection
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 1
    s = db.store.db
    assert s.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert s.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert s.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_reopening_keeps_data_and_does_not_rerun_migrations(db: Db) -> None:
    ex = db.execution()
    db.store.close()
    again = SqliteStore(db.path)
    try:
        assert again.get_execution("a", ex.id) == ex
        assert again.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        again.close()
    db.store = SqliteStore(db.path)


# ------------------------------------------------------------------ resource-group scoping


def test_execution_of_group_a_is_invisible_from_group_b(db: Db) -> None:
    ex = db.execution("a")
    assert db.store.get_execution("a", ex.id).resource_group == "a"
    with pytest.raises(NotFound):
        db.store.get_execution("b", ex.id)
    assert db.store.list_executions("b") == []
    assert [e.id for e in db.store.list_executions("a")] == [ex.id]


def test_every_read_and_write_by_id_is_scoped(db: Db) -> None:
    ex = db.execution("a")
    cfg_id = ex.configuration_id
    art = db.store.create_artifact("a", name="model", kind="model", url="ai://default/m", scenario_id="s",
                                   execution_id=ex.id)
    db.store.save_steps("a", ex.id, [StepRecord(ex.id, "main", "leaf", "main", StepState.SUCCEEDED, 1, 0,
                                                1.0, 2.0, "", "", "{}")])
    db.store.add_metrics("a", ex.id, "b1", points(ex.id, 3), tags=[("t", "v")])
    by_id = {
        "get_execution": lambda rg: db.store.get_execution(rg, ex.id),
        "get_configuration": lambda rg: db.store.get_configuration(rg, cfg_id),
        "get_executable": lambda rg: db.store.get_executable(rg, db.spec.executable_id),
        "executable_document": lambda rg: db.store.executable_document(rg, db.spec.executable_id),
        "get_artifact": lambda rg: db.store.get_artifact(rg, art.id),
        "list_steps": lambda rg: db.store.list_steps(rg, ex.id),
        "get_metrics": lambda rg: db.store.get_metrics(rg, ex.id),
        "get_tags": lambda rg: db.store.get_tags(rg, ex.id),
        "set_status": lambda rg: db.store.set_status(rg, ex.id, Status.PENDING),
        "add_metrics": lambda rg: db.store.add_metrics(rg, ex.id, "b2", points(ex.id, 1)),
        "save_steps": lambda rg: db.store.save_steps(rg, ex.id, []),
    }
    leaked = []
    for name, call in by_id.items():
        try:
            call("b")
        except NotFound:
            pass
        else:
            leaked.append(name)
        call("a")  # the owning group is served
    assert leaked == []
    assert db.store.list_artifacts("b") == [] and len(db.store.list_artifacts("a")) == 1
    assert db.store.list_executables("b") == [] and len(db.store.list_executables("a")) == 1
    assert db.store.get_execution("a", ex.id).status == Status.PENDING  # only the group-a write landed
    assert len(db.store.get_metrics("a", ex.id)) == 4


def test_same_template_in_two_groups_is_two_executables(db: Db) -> None:
    db.execution("a")
    db.execution("b")
    assert [e.resource_group for e in db.store.list_executables("a")] == ["a"]
    assert [e.resource_group for e in db.store.list_executables("b")] == ["b"]


# ------------------------------------------------------------------ status machine


ALL_PAIRS = [(old, new) for old in Status for new in Status if old != new]


@pytest.mark.parametrize(("old", "new"), ALL_PAIRS, ids=[f"{o.value}->{n.value}" for o, n in ALL_PAIRS])
def test_set_status_follows_the_transition_table(db: Db, old: Status, new: Status) -> None:
    path = _path_to(old)
    ex = db.execution()
    db.walk("a", ex.id, *path)
    if new in TRANSITIONS[old]:
        db.store.set_status("a", ex.id, new, "why")
        got = db.store.get_execution("a", ex.id)
        assert got.status == new and got.status_message == "why"
        assert (got.completion_time is not None) == new.terminal
    else:
        with pytest.raises(IllegalTransition):
            db.store.set_status("a", ex.id, new)
        assert db.store.get_execution("a", ex.id).status == old


def _path_to(target: Status) -> list[Status]:
    """Shortest legal path from UNKNOWN to ``target`` (breadth-first over TRANSITIONS)."""
    paths: dict[Status, list[Status]] = {Status.UNKNOWN: []}
    queue = [Status.UNKNOWN]
    while queue:
        cur = queue.pop(0)
        for nxt in sorted(TRANSITIONS[cur], key=lambda s: s.value):
            if nxt not in paths:
                paths[nxt] = paths[cur] + [nxt]
                queue.append(nxt)
    return paths[target]


def test_completed_cannot_go_back_to_running(db: Db) -> None:
    ex = db.execution()
    db.walk("a", ex.id, Status.PENDING, Status.RUNNING, Status.COMPLETED)
    with pytest.raises(IllegalTransition, match="COMPLETED cannot change to RUNNING"):
        db.store.set_status("a", ex.id, Status.RUNNING)


def test_times_are_set_by_running_and_terminal_statuses(db: Db) -> None:
    ex = db.execution()
    assert (ex.start_time, ex.completion_time) == (None, None)
    db.walk("a", ex.id, Status.PENDING, Status.RUNNING)
    running = db.store.get_execution("a", ex.id)
    assert running.start_time is not None and running.completion_time is None
    time.sleep(0.002)
    db.store.set_status("a", ex.id, Status.DEAD, "runner lost")
    dead = db.store.get_execution("a", ex.id)
    assert dead.start_time == running.start_time
    assert dead.completion_time is not None and dead.completion_time > dead.start_time
    assert dead.status_message == "runner lost"
    assert Status.DEAD in TERMINAL


def test_setting_the_same_status_again_is_a_no_op(db: Db) -> None:
    ex = db.execution()
    db.walk("a", ex.id, Status.PENDING, Status.RUNNING, Status.COMPLETED)
    before = db.store.get_execution("a", ex.id)
    db.store.set_status("a", ex.id, Status.COMPLETED, "again")
    assert db.store.get_execution("a", ex.id) == before


# ------------------------------------------------------------------ metrics, tags


def test_same_batch_id_twice_stores_the_points_once(db: Db) -> None:
    ex = db.execution()
    assert db.store.add_metrics("a", ex.id, "node:1:0", points(ex.id, 5)) is True
    assert db.store.add_metrics("a", ex.id, "node:1:0", points(ex.id, 5)) is False
    got = db.store.get_metrics("a", ex.id)
    assert [(m.name, m.step, m.value, m.labels) for m in got] == \
        [("loss", i, i / 10, (("split", "train"),)) for i in range(5)]
    assert db.store.add_metrics("a", ex.id, "node:1:100", points(ex.id, 1, start=5)) is True
    assert len(db.store.get_metrics("a", ex.id)) == 6


def test_batch_ids_are_per_execution(db: Db) -> None:
    ex1, ex2 = db.execution(), db.execution()
    assert db.store.add_metrics("a", ex1.id, "same", points(ex1.id, 2))
    assert db.store.add_metrics("a", ex2.id, "same", points(ex2.id, 3))
    assert (len(db.store.get_metrics("a", ex1.id)), len(db.store.get_metrics("a", ex2.id))) == (2, 3)


def test_tags_and_custom_info_upsert_by_name(db: Db) -> None:
    ex = db.execution()
    db.store.add_metrics("a", ex.id, "1", [], tags=[("stage", "train"), ("owner", "me")],
                         custom_info=[("report", "{}")])
    db.store.add_metrics("a", ex.id, "2", [], tags=[("stage", "eval")], custom_info=[("report", '{"a":1}')])
    tags, info = db.store.get_tags("a", ex.id)
    assert tags == [("owner", "me"), ("stage", "eval")]
    assert info == [("report", '{"a":1}')]


def test_metrics_of_an_unknown_execution_are_refused(db: Db) -> None:
    with pytest.raises(NotFound):
        db.store.add_metrics("a", "no-such-execution", "b", [])
    assert db.count("metric_batches") == 0


# ------------------------------------------------------------------ transactions


def test_a_transaction_that_raises_rolls_back_everything(db: Db) -> None:
    ex = db.execution()
    before = {t: db.count(t) for t in ("executions", "artifacts", "metrics", "metric_batches", "tags", "steps")}
    with pytest.raises(RuntimeError, match="crash"):
        with db.store.transaction():
            db.store.set_status("a", ex.id, Status.PENDING)
            db.store.create_artifact("a", name="m", kind="model", url="ai://default/m", scenario_id="s")
            db.store.add_metrics("a", ex.id, "batch", points(ex.id, 10), tags=[("k", "v")])
            db.store.save_steps("a", ex.id, [StepRecord(ex.id, "n", "leaf", "t", StepState.RUNNING, 1, None,
                                                        None, None, "", "", "{}")])
            db.execution()
            raise RuntimeError("crash")
    assert {t: db.count(t) for t in before} == before
    assert db.store.get_execution("a", ex.id).status == Status.UNKNOWN
    # the store is usable afterwards and the rolled-back batch id is free again
    assert db.store.add_metrics("a", ex.id, "batch", points(ex.id, 1)) is True


def test_a_failing_statement_inside_a_transaction_rolls_back_earlier_ones(db: Db) -> None:
    ex = db.execution()
    with pytest.raises(IllegalTransition):
        with db.store.transaction():
            db.store.add_metrics("a", ex.id, "x", points(ex.id, 3))
            db.store.set_status("a", ex.id, Status.COMPLETED)  # UNKNOWN -> COMPLETED is illegal
    assert db.store.get_metrics("a", ex.id) == []


def test_register_executable_twice_keeps_created_at(db: Db) -> None:
    first = db.store.register_executable("a", db.spec, {"v": 1})
    time.sleep(0.002)
    same = db.store.register_executable("a", db.spec, {"v": 1})
    assert same == first
    time.sleep(0.002)
    changed_spec = workflow("print(2)")
    assert changed_spec.digest != db.spec.digest
    changed = db.store.register_executable("a", changed_spec, {"v": 2})
    assert changed.created_at == first.created_at
    assert changed.modified_at > first.modified_at
    assert changed.digest == changed_spec.digest
    assert db.store.executable_document("a", first.id) == {"v": 2}


# ------------------------------------------------------------------ concurrent writers


WORKERS, BATCHES = 4, 200


def _writer(path: str, rg: str, execution_id: str, worker: int) -> tuple[int, list[str]]:
    """Child process: own connection, 200 batches; returns (ok count, error messages)."""
    store = SqliteStore(path)
    ok, errors = 0, []
    try:
        for i in range(BATCHES):
            try:
                pts = [MetricPoint(execution_id, f"w{worker}", float(i), "t", i)]
                ok += store.add_metrics(rg, execution_id, f"w{worker}:{i}", pts)
            except Exception as exc:  # noqa: BLE001 - counted and reported by the parent
                errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        store.close()
    return ok, errors


@pytest.mark.slow
def test_four_processes_writing_batches_concurrently(db: Db) -> None:
    ex = db.execution()
    # An executor, not a Pool: a worker that dies raises BrokenProcessPool instead of hanging the suite.
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=ctx) as pool:
        futures = [pool.submit(_writer, db.path, "a", ex.id, w) for w in range(WORKERS)]
        results = [f.result(timeout=300) for f in futures]
    errors = [e for _, errs in results for e in errs]
    assert errors == []
    assert [ok for ok, _ in results] == [BATCHES] * WORKERS
    got = db.store.get_metrics("a", ex.id)
    assert len(got) == WORKERS * BATCHES
    for w in range(WORKERS):
        assert sorted(m.step for m in got if m.name == f"w{w}") == list(range(BATCHES))
    assert db.count("metric_batches") == WORKERS * BATCHES
    assert db.store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ------------------------------------------------------------------ unwritable store


def test_disk_full_is_a_store_error_and_keeps_earlier_rows(db: Db) -> None:
    ex = db.execution()
    pages = db.store.db.execute("PRAGMA page_count").fetchone()[0]
    db.store.db.execute(f"PRAGMA max_page_count={pages + 3}")
    written = 0
    with pytest.raises(StoreError, match="full") as info:
        for written in range(10_000):  # noqa: B007 - the count after the loop is the point
            db.store.add_metrics("a", ex.id, f"b{written}", points(ex.id, 50))
    assert info.value.http_status == 503 and "disk space" in str(info.value)
    assert written > 0
    assert len(db.store.get_metrics("a", ex.id)) == 50 * written  # nothing of the failed batch
    assert db.store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # once there is room again, the failed batch is accepted: its id was rolled back too
    db.store.db.execute("PRAGMA max_page_count=1073741823")
    assert db.store.add_metrics("a", ex.id, f"b{written}", points(ex.id, 50)) is True


def test_read_only_store_is_a_store_error(db: Db) -> None:
    ex = db.execution()
    db.store.db.execute("PRAGMA query_only=ON")
    with pytest.raises(StoreError, match="not writable|readonly"):
        db.store.set_status("a", ex.id, Status.PENDING)
    db.store.db.execute("PRAGMA query_only=OFF")
    db.store.set_status("a", ex.id, Status.PENDING)  # the connection recovered
    assert db.store.get_execution("a", ex.id).status == Status.PENDING


def test_store_in_a_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "store.db"
    with pytest.raises(StoreError, match="cannot open store") as info:
        SqliteStore(str(path))
    assert str(path) in str(info.value)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        SqliteStore(str(path))
    assert path.read_bytes() == b"this is not sqlite" * 100


def test_store_error_is_raised_while_another_connection_holds_the_write_lock(db: Db) -> None:
    ex = db.execution()
    short = SqliteStore(db.path, timeout=0.2)
    holder = sqlite3.connect(db.path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        t0 = time.monotonic()
        with pytest.raises(StoreError, match="locked"):
            short.set_status("a", ex.id, Status.PENDING)
        assert time.monotonic() - t0 >= 0.15  # it waited for busy_timeout, not failed at once
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        short.close()
    db.store.set_status("a", ex.id, Status.PENDING)


def test_a_blocked_writer_waits_for_the_lock_and_commits(db: Db) -> None:
    """BEGIN IMMEDIATE + busy_timeout: a write blocked for 0.3 s by another connection succeeds."""
    ex = db.execution()
    writer = SqliteStore(db.path)
    holder = sqlite3.connect(db.path, isolation_level=None)
    outcome: dict[str, object] = {}

    def write() -> None:
        t0 = time.monotonic()
        try:
            outcome["ok"] = writer.add_metrics("a", ex.id, "blocked", points(ex.id, 3))
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcome["error"] = exc
        outcome["waited"] = time.monotonic() - t0

    holder.execute("BEGIN IMMEDIATE")
    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(0.3)
    holder.execute("COMMIT")
    holder.close()
    thread.join(30)
    writer.close()
    assert "error" not in outcome and outcome["ok"] is True
    assert outcome["waited"] >= 0.25  # type: ignore[operator]
    assert len(db.store.get_metrics("a", ex.id)) == 3
