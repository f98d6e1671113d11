"""The registry's rules (what may become a version, names, aliases, register-on-success) and
compare's choices (goals, sort, best row, differing parameters), over a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.control import registry
from orchestrator.control.compare import compare, parse_sort
from orchestrator.errors import Conflict, NotFound, UsageError
from orchestrator.model import MetricPoint, Status
from orchestrator.spec import validate_text
from orchestrator.store.sqlite import SqliteStore
from tests.conftest import template

RG = "default"
TEMPLATE = template("train", """
    - name: main
      container: {image: x, command: ["true"]}
    """, params="- name: lr\n  value: '0.1'\n- name: depth\n  value: '3'",
    annotations="""
    orchestrator/metrics: "loss:min,auc:max"
    orchestrator/register-model.the-model: clf
    orchestrator/register-model.missing-output: other
    """)


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(str(tmp_path / "o.db"))
    res = validate_text(TEMPLATE.encode(), "train.yaml")
    assert not res.errors, res.errors
    s.register_executable(RG, res.workflows[0], {"text": TEMPLATE, "index": 0, "file": "train.yaml"})
    s.ensure_resource_group("other")
    return s


def _run(s: SqliteStore, tmp: Path, lr: str, *, status: Status = Status.COMPLETED, rg: str = RG,
         outputs: tuple[tuple[str, str], ...] = (("the-model", "model"),),
         metrics: dict[str, list[float]] | None = None) -> str:
    cfg = s.create_configuration(rg, "c", "test-scenario", "train", [("lr", lr)], [])
    eid = s.create_execution(rg, cfg, str(tmp)).id
    for name, kind in outputs:
        s.create_artifact(rg, name=name, kind=kind, url=f"ai://default/{eid}/{name}", scenario_id="test-scenario",
                          execution_id=eid, digest="ab" * 32)
    for name, values in (metrics or {}).items():
        s.add_metrics(rg, eid, "", [MetricPoint(eid, name, v, "t", i, ()) for i, v in enumerate(values)])
    for st in (Status.PENDING, Status.RUNNING, status):
        if st != Status.UNKNOWN:
            s.set_status(rg, eid, st)
    return eid


def _artifact(s: SqliteStore, rg: str, eid: str, name: str) -> str:
    return next(a.id for a in s.list_artifacts(rg, execution_id=eid) if a.name == name)


def test_register_from_execution_records_sha256_and_lineage(store: SqliteStore, tmp_path: Path) -> None:
    eid = _run(store, tmp_path, "0.3", metrics={"loss": [0.5, 0.2]})
    mv = registry.register(store, RG, "clf", execution_id=eid, tags=[("team", "a")])
    assert (mv.version, mv.sha256, mv.execution_id, mv.tags) == (1, "ab" * 32, eid, (("team", "a"),))
    lin = registry.lineage(store, RG, mv)
    assert lin["execution"]["status"] == "COMPLETED" and lin["artifact"]["digestMatches"]
    assert {"name": "lr", "value": "0.3"} in lin["parameters"] and {"name": "depth", "value": "3"} in lin["parameters"]
    assert lin["metrics"][0]["name"] == "loss" and lin["metrics"][0]["min"] == 0.2
    assert [v.version for v in store.list_model_versions(RG, execution_id=eid)] == [1]


def test_register_refuses_what_is_not_a_completed_model(store: SqliteStore, tmp_path: Path) -> None:
    ok = _run(store, tmp_path, "0.1", outputs=(("the-model", "model"), ("report", "other")))
    with pytest.raises(UsageError, match="'other' artifact, not a model"):
        registry.register(store, RG, "clf", artifact_id=_artifact(store, RG, ok, "report"))
    with pytest.raises(UsageError, match="not a model"):
        registry.register(store, RG, "clf", execution_id=ok, output="report")
    dead = _run(store, tmp_path, "0.2", status=Status.DEAD)
    with pytest.raises(Conflict, match="DEAD"):
        registry.register(store, RG, "clf", execution_id=dead)
    with pytest.raises(Conflict, match="DEAD"):
        registry.register_version(store, RG, "clf", _artifact(store, RG, dead, "the-model"), execution_id=dead)
    theirs = _run(store, tmp_path, "0.1", rg="other")
    with pytest.raises(NotFound):
        registry.register(store, RG, "clf", artifact_id=_artifact(store, "other", theirs, "the-model"))
    with pytest.raises(NotFound):
        registry.register(store, RG, "clf", execution_id=theirs)
    with pytest.raises(UsageError, match="is an output of execution"):
        registry.register_version(store, RG, "clf", _artifact(store, RG, ok, "the-model"), execution_id=dead)
    with pytest.raises(UsageError, match="bad model name"):
        registry.register(store, RG, "../x", execution_id=ok)
    assert store.list_models(RG) == []  # nothing half-registered


def test_register_picks_the_model_output(store: SqliteStore, tmp_path: Path) -> None:
    two = _run(store, tmp_path, "0.1", outputs=(("a", "model"), ("b", "model")))
    with pytest.raises(UsageError, match="2 model outputs: a, b"):
        registry.register(store, RG, "clf", execution_id=two)
    assert registry.register(store, RG, "clf", execution_id=two, output="b").artifact_id == _artifact(store, RG, two, "b")
    none = _run(store, tmp_path, "0.1", outputs=(("r", "other"),))
    with pytest.raises(NotFound, match="no model artifact"):
        registry.register(store, RG, "clf", execution_id=none)
    with pytest.raises(NotFound, match="no output 'zz'"):
        registry.register(store, RG, "clf", execution_id=two, output="zz")
    with pytest.raises(UsageError, match="exactly one"):
        registry.register(store, RG, "clf")


def test_register_on_success_follows_the_annotation(store: SqliteStore, tmp_path: Path) -> None:
    assert registry.register_requests(store, RG, "train") == {"the-model": "clf", "missing-output": "other"}
    running = _run(store, tmp_path, "0.1", status=Status.RUNNING)
    assert registry.register_on_success(store, RG, running) == ([], [])
    eid = _run(store, tmp_path, "0.2")
    done, problems = registry.register_on_success(store, RG, eid)
    assert [(v.model, v.version) for v in done] == [("clf", 1)]
    assert len(problems) == 1 and "missing-output" in problems[0]
    tags = dict(store.get_tags(RG, eid)[0])
    assert tags["orchestrator/registered-model.the-model"] == "clf:1"
    assert "no output 'missing-output'" in tags["orchestrator/register-model-error.missing-output"]
    again, _ = registry.register_on_success(store, RG, eid)  # idempotent: same artifact, same version
    assert [v.version for v in again] == [1]


def test_request_registration_while_running_is_honoured_on_success(store: SqliteStore, tmp_path: Path) -> None:
    eid = _run(store, tmp_path, "0.1", status=Status.RUNNING, outputs=(("the-model", "model"), ("r", "other")))
    art = _artifact(store, RG, eid, "the-model")
    assert registry.request_registration(store, RG, "mlflow-clf", art, execution_id=eid) is None
    assert store.list_models(RG) == []  # not before the execution completed
    with pytest.raises(UsageError, match="not a model output"):
        registry.request_registration(store, RG, "x", _artifact(store, RG, eid, "r"), execution_id=eid)
    store.set_status(RG, eid, Status.COMPLETED)
    done, _ = registry.register_on_success(store, RG, eid)
    assert sorted((v.model, v.version) for v in done) == [("clf", 1), ("mlflow-clf", 1)]
    assert [v.artifact_id for v in done if v.model == "mlflow-clf"] == [art]
    # once COMPLETED, a request registers at once
    assert registry.request_registration(store, RG, "later", art, execution_id=eid).version == 1  # type: ignore[union-attr]
    dead = _run(store, tmp_path, "0.2", status=Status.DEAD)
    with pytest.raises(Conflict):
        registry.request_registration(store, RG, "x", _artifact(store, RG, dead, "the-model"), execution_id=dead)


def test_aliases_names_and_resolution(store: SqliteStore, tmp_path: Path) -> None:
    for lr in ("0.1", "0.2"):
        registry.register(store, RG, "clf", execution_id=_run(store, tmp_path, lr))
    assert registry.set_alias(store, RG, "clf", "champion", 1) is None
    assert registry.resolve_version(store, RG, "clf", "champion").version == 1
    assert registry.resolve_version(store, RG, "clf", None).version == 2
    assert registry.resolve_version(store, RG, "clf", "1").version == 1
    for bad in ("1st", "latest", "a b", ""):
        with pytest.raises(UsageError):
            registry.set_alias(store, RG, "clf", bad, 1)
    with pytest.raises(NotFound):
        registry.resolve_version(store, RG, "clf", "staging")
    with pytest.raises(NotFound):
        registry.resolve_version(store, "other", "clf", "champion")
    assert registry.parse_tags(["a=1", "b="]) == [("a", "1"), ("b", "")]
    with pytest.raises(UsageError):
        registry.parse_tags(["novalue"])


def test_compare_goals_sort_best_and_differing(store: SqliteStore, tmp_path: Path) -> None:
    a = _run(store, tmp_path, "0.1", metrics={"loss": [0.9, 0.3], "auc": [0.7]})
    b = _run(store, tmp_path, "0.2", metrics={"loss": [0.5, 0.4], "auc": [0.9]})
    c = _run(store, tmp_path, "0.3", metrics={"loss": [0.1]}, status=Status.DEAD)
    d = _run(store, tmp_path, "0.4", metrics={"acc": [0.5]})
    res = compare(store, RG, scenario_id="test-scenario")
    assert res["sort"] == {"metric": "loss", "goal": "min"}
    assert [r["id"] for r in res["executions"]] == [c, a, b, d]  # by best loss; without it last
    assert res["bestExecutionId"] == a  # c is better but DEAD
    assert res["differingParameters"] == ["lr"] and res["parameters"] == ["depth", "lr"]
    row_a = res["executions"][1]
    assert row_a["metrics"]["loss"] == {**row_a["metrics"]["loss"], "last": 0.3, "best": 0.3, "bestStep": 1}
    assert compare(store, RG, scenario_id="test-scenario", sort="auc")["bestExecutionId"] == b
    assert compare(store, RG, execution_ids=[a, b], sort="loss:max")["bestExecutionId"] == a  # max 0.9
    with pytest.raises(UsageError, match="no declared goal"):
        compare(store, RG, execution_ids=[a, d], sort="acc")
    with pytest.raises(NotFound):
        compare(store, "other", execution_ids=[a])
    with pytest.raises(UsageError):
        compare(store, RG)
    assert parse_sort("loss:MIN") == ("loss", "min") and parse_sort("a:b") == ("a:b", None)
