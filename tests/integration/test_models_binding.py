"""``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` wherever an input artifact is bound (issue 14 item 4).

A tiny train template writes its parameter ``v`` into its model; a tiny score template logs the
number it finds in the bound model as metric ``used``, so every test sees which version a run
really got. Covered: the CLI's ``--artifact``, a Configuration document, the REST configuration
and execution, a schedule whose next run follows a re-pointed alias, resume, and references that
do not resolve (nothing written).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from orchestrator.control import registry, resources
from orchestrator.control.service import Service
from orchestrator.errors import BindingError, NotFound
from orchestrator.plan.cron import FakeClock
from tests.conftest import Cli, template
from tests.integration.conftest import ApiServer

RG = "default"
TRAIN = template("tiny-train", """
- name: main
  outputs:
    artifacts:
      - name: model
        globalName: tiny-model
        path: /app/model/
        archive: {none: {}}
  script:
    image: python:3.11-slim
    command: [python3]
    env:
      - {name: V, value: "{{workflow.parameters.v}}"}
      - {name: OUT, value: "{{outputs.artifacts.model.path}}"}
    source: |
      import os
      os.makedirs(os.environ["OUT"], exist_ok=True)
      open(os.path.join(os.environ["OUT"], "model.txt"), "w").write(os.environ["V"])
""", params="- name: v\n  value: '0'", annotations="artifacts.ai.sap.com/tiny-model.kind: model")
SCORE = template("tiny-score", """
- name: main
  inputs:
    artifacts:
      - name: model
        path: /app/model/
  script:
    image: python:3.11-slim
    command: [python3]
    env:
      - {name: MODEL, value: "{{inputs.artifacts.model.path}}"}
    source: |
      import os
      from orchestrator import tracking
      used = float(open(os.path.join(os.environ["MODEL"], "model.txt")).read())
      print(f"scored with model {used}")
      tracking.log_metric("used", used)
""", annotations="artifacts.ai.sap.com/model.kind: model")


def _files(tmp: Path) -> tuple[str, str]:
    (tmp / "train.yaml").write_text(TRAIN)
    (tmp / "score.yaml").write_text(SCORE)
    return str(tmp / "train.yaml"), str(tmp / "score.yaml")


def _models(home: Path, tmp: Path, values: tuple[str, ...] = ("1", "2")) -> None:
    """Train once per value (in this process) and register each model as the next version of ``m``;
    ``champion`` names version 1."""
    train, score = _files(tmp)
    svc = Service(home, reap=False)
    try:
        svc.register([score])
        for v in values:
            plan = svc.plan(train, [f"v={v}"], [])
            ex = svc.create(plan)
            assert svc.execute(ex, plan).value == "COMPLETED"
            registry.register(svc.store, RG, "m", execution_id=ex.id)
        registry.set_alias(svc.store, RG, "m", "champion", 1)
    finally:
        svc.close()


def _used(svc: Service, execution_id: str) -> float:
    """The model value the scoring run read (metric ``used``), once it has ended."""
    deadline = time.monotonic() + 30
    ex = svc.store.get_execution(RG, execution_id)
    while not ex.status.terminal and time.monotonic() < deadline:
        time.sleep(0.1)
        ex = svc.store.get_execution(RG, execution_id)
    assert ex.status.value == "COMPLETED", ex.status_message
    (m,) = [m for m in svc.store.metric_summaries(RG, execution_id) if m["name"] == "used"]
    return float(m["last"])


def _count(home: Path) -> int:
    svc = Service(home, reap=False)
    try:
        return len(svc.store.list_executions(RG, limit=1000))
    finally:
        svc.close()


def test_cli_artifact_models_alias_follows_the_alias_and_records_the_version(cli: Cli, tmp_path: Path) -> None:
    _models(cli.home, tmp_path)
    first = cli.run_json("score.yaml", "--artifact", "model=models:/m@champion")
    (inp,) = first["inputArtifacts"]
    assert (inp["reference"], inp["model"], inp["modelVersion"], inp["kind"]) == ("models:/m@champion", "m", 1, "model")
    assert "models:/m@champion v1" in cli("executions", "show", first["id"], check=0).stdout
    cli("models", "alias", "m", "champion", "2", check=0)
    second = cli.run_json("score.yaml", "--artifact", "model=models:/m@champion")
    svc = Service(cli.home, reap=False)
    try:
        assert (_used(svc, first["id"]), _used(svc, second["id"])) == (1.0, 2.0)
        assert second["inputArtifacts"][0]["modelVersion"] == 2
        # the configuration keeps the reference; the execution records what it resolved to
        cfg = svc.store.get_configuration(RG, second["configurationId"])
        assert cfg.input_artifact_bindings == (("model", "models:/m@champion"),)
        # resume uses the parent's version, not whatever champion names now
        ex, _, _, _ = svc.plan_resume(first["id"])
        assert svc.store.execution_inputs(RG, ex.id)[0]["version"] == 1
        # lineage of a version lists what its execution was bound to, resolved
        assert registry.version_json(svc.store.get_model_version(RG, "m", 1))["executionId"]
    finally:
        svc.close()
    pinned = cli.run_json("score.yaml", "--artifact", "model=models:/m/1")
    assert pinned["inputArtifacts"][0]["modelVersion"] == 1


def test_unresolvable_references_exit_2_and_write_nothing(cli: Cli, tmp_path: Path) -> None:
    _models(cli.home, tmp_path, ("1",))
    before = _count(cli.home)
    for ref, words in (("models:/m@nope", "model 'm' has no alias 'nope'"),
                       ("models:/m/7", "model 'm' has no version 7"),
                       ("models:/zz@champion", "no registered model 'zz'"),
                       ("models:/m", "bad model reference"),
                       ("models:/m@1x/2", "bad model reference")):
        p = cli("run", "score.yaml", "--artifact", f"model={ref}", check=2)
        assert words in p.stderr, (ref, p.stderr)
    assert _count(cli.home) == before


def test_configuration_document_with_a_version_reference(cli: Cli, tmp_path: Path) -> None:
    _models(cli.home, tmp_path)
    doc = ("apiVersion: orchestrator/v1\nkind: Configuration\nmetadata: {name: score-v2}\nspec:\n"
           "  executableId: tiny-score\n  inputArtifactBindings:\n    - {key: model, artifactId: %s}\n")
    cli.write("cfg.yaml", doc % "models:/m/2")
    cli("validate", "cfg.yaml", check=0)
    out = cli.run_json("--config", "cfg.yaml")
    assert out["configurationName"] == "score-v2" and out["inputArtifacts"][0]["modelVersion"] == 2
    svc = Service(cli.home, reap=False)
    try:
        assert _used(svc, out["id"]) == 2.0
    finally:
        svc.close()
    cli.write("by-url.yaml", (doc % "x").replace("artifactId: x", "url: models:/m@champion"))
    assert cli.run_json("--config", "by-url.yaml")["inputArtifacts"][0]["modelVersion"] == 1
    cli.write("bad.yaml", doc % "models:/m/9")
    before = _count(cli.home)
    assert "no version 9" in cli("run", "--config", "bad.yaml", check=2).stderr
    assert _count(cli.home) == before


def test_rest_configuration_and_execution(tmp_path: Path) -> None:
    srv = ApiServer(tmp_path)
    try:
        _models(srv.home, tmp_path)
        body = {"name": "score", "scenarioId": "test-scenario", "executableId": "tiny-score",
                "inputArtifactBindings": [{"key": "model", "artifactId": "models:/m@champion"}]}
        code, _, made = srv.call("POST", "/v2/lm/configurations", body)
        assert code == 201, made
        code, _, cfg = srv.call("GET", f"/v2/lm/configurations/{made['id']}")
        assert cfg["inputArtifactBindings"] == [{"key": "model", "artifactId": "models:/m@champion"}]
        code, _, ex = srv.call("POST", "/v2/lm/executions", {"configurationId": made["id"]})
        assert code == 202, ex
        svc = Service(srv.home, reap=False)
        try:
            assert _used(svc, ex["id"]) == 1.0
        finally:
            svc.close()
        code, _, got = srv.call("GET", f"/v2/lm/executions/{ex['id']}")
        assert got["modelInputs"][0]["modelVersion"] == 1 and got["modelInputs"][0]["model"] == "m"
        before = srv.call("GET", "/v2/lm/configurations/$count")[2]
        for ref, status in (("models:/m@nope", 404), ("models:/zz/1", 404), ("models:/m", 400)):
            bad = {**body, "inputArtifactBindings": [{"key": "model", "artifactId": ref}]}
            code, _, err = srv.call("POST", "/v2/lm/configurations", bad)
            assert code == status, (ref, err)
        assert srv.call("GET", "/v2/lm/configurations/$count")[2] == before  # nothing written
    finally:
        srv.stop()


def test_schedule_follows_the_re_pointed_alias(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _models(home, tmp_path)
    svc = Service(home, reap=False)
    try:
        try:
            resources.create_configuration(svc, name="x", scenario_id="test-scenario", executable_id="tiny-score",
                                           parameters=[], artifacts=[("model", "models:/m@staging")])
            raise AssertionError("an unresolvable reference was accepted")
        except NotFound as exc:
            assert "no alias 'staging'" in exc.message
        try:
            resources.create_configuration(svc, name="x", scenario_id="test-scenario", executable_id="tiny-score",
                                           parameters=[], artifacts=[("model", "models:/m@")])
            raise AssertionError("a malformed reference was accepted")
        except BindingError:
            pass
        cfg = resources.create_configuration(svc, name="nightly", scenario_id="test-scenario",
                                             executable_id="tiny-score", parameters=[],
                                             artifacts=[("model", "models:/m@champion")])
        sid = svc.store.create_schedule(RG, name="s", cron="0 * * * *", configuration_id=cfg.id,
                                        start="2025-06-01T09:59:00Z")["id"]
        clock = FakeClock(datetime(2025, 6, 1, 10, 0, 5, tzinfo=timezone.utc))
        ((_, _, first),) = svc.scheduler_tick(clock).started
        registry.set_alias(svc.store, RG, "m", "champion", 2)  # no configuration change
        clock.advance(3600)
        ((_, _, second),) = svc.scheduler_tick(clock).started
        assert [svc.store.execution_inputs(RG, e)[0]["version"] for e in (first, second)] == [1, 2]
        assert (_used(svc, first), _used(svc, second)) == (1.0, 2.0)
        svc.store.delete_model_alias(RG, "m", "champion")
        clock.advance(3600)
        report = svc.scheduler_tick(clock)
        assert report.started == [] and "no alias 'champion'" in report.failed[0][2]
        rec = {r["slot"]: r for r in svc.store.slot_records(RG, sid)}["2025-06-01T12:00:00Z"]
        assert rec["outcome"] == "failed" and "models:/m@champion" in rec["reason"]
    finally:
        svc.close()


def test_git_synced_configuration_and_schedule(tmp_path: Path) -> None:
    """Declarative documents from git keep ``models:/m@champion``; each scheduled run resolves it."""
    from tests.unit.git.test_gitsync import new_repo

    home = tmp_path / "home"
    _models(home, tmp_path)
    repo = new_repo(tmp_path / "repo", {
        "workflows/score.yaml": SCORE.replace("tiny-score", "git-score"),
        "workflows/cfg.yaml": "apiVersion: orchestrator/v1\nkind: Configuration\nmetadata: {name: score-cfg}\n"
                              "spec:\n  executableId: git-score\n  inputArtifactBindings:\n"
                              "    - {key: model, artifactId: 'models:/m@champion'}\n",
        "workflows/schedule.yaml": "apiVersion: orchestrator/v1\nkind: ExecutionSchedule\nmetadata: {name: hourly}\n"
                                   "spec:\n  cron: '0 * * * *'\n  configurationName: score-cfg\n"
                                   "  start: '2025-06-01T09:59:00Z'\n"})
    svc = Service(home, reap=False)
    try:
        svc.add_repository("repo", str(repo))
        svc.add_application("app", repository="repo", path="workflows", revision="main")
        (report,) = svc.sync()
        assert report.status == "SYNCED", report.files
        clock = FakeClock(datetime(2025, 6, 1, 10, 0, 5, tzinfo=timezone.utc))
        ((_, _, first),) = svc.scheduler_tick(clock).started
        registry.set_alias(svc.store, RG, "m", "champion", 2)
        clock.advance(3600)
        ((_, _, second),) = svc.scheduler_tick(clock).started
        cfg = svc.store.get_configuration(RG, svc.store.get_execution(RG, second).configuration_id)
        assert cfg.input_artifact_bindings == (("model", "models:/m@champion"),)
        assert [svc.store.execution_inputs(RG, e)[0]["version"] for e in (first, second)] == [1, 2]
        assert (_used(svc, first), _used(svc, second)) == (1.0, 2.0)
    finally:
        svc.close()
