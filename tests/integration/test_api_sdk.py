"""SAP's real Python clients, unmodified, against a real ``orchestrator serve``.

``ai_core_sdk`` (sap-ai-sdk-core) and ``ai_api_client_sdk`` (sap-ai-sdk-base) drive one server per
module (shipped workflows registered in resource group ``default``): the catalog, artifacts,
configurations, a training run and a scoring run on its model, logs and metrics, stopping a
long run, ``$count`` and the error body, resource-group isolation, tracking from inside a step,
OAuth client credentials, execution schedules and metrics PATCH semantics.
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ai_api_client_sdk.ai_api_v2_client import AIAPIV2Client
from ai_api_client_sdk.exception import (
    AIAPIAuthenticatorAuthorizationException,
    AIAPIInvalidRequestException,
    AIAPINotFoundException,
    AIAPIServerException,
)
from ai_api_client_sdk.models.artifact import Artifact
from ai_api_client_sdk.models.base_models import BasicModifyRequest, BasicResponse, BulkModifyErrorResponse, Order
from ai_api_client_sdk.models.input_artifact_binding import InputArtifactBinding
from ai_api_client_sdk.models.metric import Metric
from ai_api_client_sdk.models.metric_custom_info import MetricCustomInfo
from ai_api_client_sdk.models.metric_label import MetricLabel
from ai_api_client_sdk.models.metric_tag import MetricTag
from ai_api_client_sdk.models.parameter_binding import ParameterBinding
from ai_api_client_sdk.models.status import ScheduleStatus, Status
from ai_api_client_sdk.models.target_status import TargetStatus
from ai_core_sdk.ai_core_v2_client import AICoreV2Client
from ai_core_sdk.tracking import Tracking

from orchestrator.control.service import Service
from tests.integration.conftest import REPO, ApiServer

# one worker runs the whole module (--dist loadgroup): its module-scoped server and trained model are made once
pytestmark = pytest.mark.xdist_group("api_sdk")


TERMINAL = {Status.COMPLETED, Status.DEAD, Status.STOPPED}
SCENARIO = "sklearn-breast-cancer"


# ---------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("sdk")
    server = ApiServer(tmp, "--workflows", str(REPO / "workflows"),
                       env={"ORCHESTRATOR_FILE_ROOTS": str(tmp / "shared")})
    try:
        yield server
    finally:  # runners outlive the server: stop what a failed test left running (the 60 s sleepers)
        for rg in ("default", "team-b"):
            for status in ("PENDING", "RUNNING"):
                code, _, body = server.call("GET", f"/v2/lm/executions?status={status}", rg=rg)
                for ex in body.get("resources", []) if code == 200 else []:
                    server.call("PATCH", f"/v2/lm/executions/{ex['id']}", {"targetStatus": "STOPPED"}, rg=rg)
        server.stop()


def _core(srv: ApiServer, rg: str = "default") -> AICoreV2Client:
    return AICoreV2Client(base_url=f"{srv.base}/v2", token_creator=lambda: "Bearer " + srv.token, resource_group=rg)


def _api(srv: ApiServer, rg: str = "default") -> AIAPIV2Client:
    return AIAPIV2Client(base_url=f"{srv.base}/v2/lm", token_creator=lambda: "Bearer " + srv.token, resource_group=rg)


@pytest.fixture(scope="module")
def core(srv: ApiServer) -> AICoreV2Client:
    return _core(srv)


@pytest.fixture(scope="module")
def api(srv: ApiServer) -> AIAPIV2Client:
    return _api(srv)


def wait_status(client: Any, execution_id: str, wanted: set[Status], timeout: float = 45) -> Status:
    """Poll ``execution.get(select="status")`` until the status is in ``wanted`` (or terminal)."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = client.execution.get(execution_id, select="status").status
        if status in wanted or status in TERMINAL:
            return status
        time.sleep(0.1)
    raise AssertionError(f"execution {execution_id} still {status} after {timeout}s")


def run_to_end(client: Any, config_id: str, timeout: float = 90) -> str:
    eid = client.execution.create(configuration_id=config_id).id
    status = wait_status(client, eid, TERMINAL, timeout)
    if status != Status.COMPLETED:
        ex = client.execution.get(eid)
        logs = "\n".join(x.msg for x in client.execution.query_logs(eid).data.result)
        raise AssertionError(f"execution {eid} ended {status}: {ex.status_message}\n{logs}")
    return eid


def template(srv: ApiServer, name: str, command: list[str], scenario: str = "sdk-tests") -> Path:
    """Write a one-step template into the server's directory and register it (group default)."""
    path = srv.tmp / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        apiVersion: argoproj.io/v1alpha1
        kind: WorkflowTemplate
        metadata:
          name: {name}
          labels:
            scenarios.ai.sap.com/id: {scenario}
            ai.sap.com/version: "1.0.0"
          annotations:
            scenarios.ai.sap.com/name: "SDK tests"
            executables.ai.sap.com/name: "{name}"
        spec:
          entrypoint: main
          templates:
            - name: main
              metadata:
                labels:
                  ai.sap.com/resourcePlan: starter
              container:
                image: python:3.11-slim
                command: {json.dumps(command)}
        """))
    srv.cli("register", str(path))
    return path


def marker_processes(marker: str, execution_id: str = "") -> list[int]:
    """Processes whose argv holds ``marker`` (and, if given, whose env names that execution)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() not in (entry / "cmdline").read_bytes():
                continue
            if execution_id and f"AICORE_EXECUTION_ID={execution_id}".encode() not in \
                    (entry / "environ").read_bytes().split(b"\0"):
                continue
            pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.fixture(scope="module")
def trained(core: AICoreV2Client) -> dict[str, Any]:
    """One sklearn-train run (small forest), shared by the tests that need a finished execution;
    a failing-step run goes on beside it (its DEAD end is checked in the catalog test's neighbour)."""
    failing = core.configuration.create(name="fail", scenario_id="orchestrator-demo", executable_id="failing-step",
                                        parameter_bindings=[ParameterBinding("missing-values", "7")])
    dead_id = core.execution.create(configuration_id=failing.id).id
    cfg = core.configuration.create(
        name="train-small", scenario_id=SCENARIO, executable_id="sklearn-train",
        parameter_bindings=[ParameterBinding("n-estimators", "10"), ParameterBinding("max-depth", "3")])
    eid = run_to_end(core, cfg.id)
    return {"configuration_id": cfg.id, "execution_id": eid, "dead_id": dead_id}


# ---------------------------------------------------------------------- 1. catalog
def _kind(kind: Any) -> str:
    return str(getattr(kind, "value", kind))


def test_scenarios_executables_and_versions(api: AIAPIV2Client) -> None:
    scenarios = {s.id: s for s in api.scenario.query().resources}
    assert {SCENARIO, "orchestrator-demo"} <= set(scenarios)
    assert scenarios[SCENARIO].name == "Breast cancer classification (scikit-learn)"

    exes = {e.id for e in api.executable.query(scenario_id=SCENARIO).resources}
    assert exes == {"sklearn-train", "sklearn-score", "sklearn-train-mlflow"}
    assert {e.id for e in api.executable.query(scenario_id="orchestrator-demo").resources} == {"failing-step"}

    train = api.executable.get(scenario_id=SCENARIO, executable_id="sklearn-train")
    assert train.scenario_id == SCENARIO and train.name == "sklearn-train" and train.version_id == "1.0.0"
    params = {p.name: p for p in train.parameters}
    assert set(params) == {"test-size", "random-state", "n-estimators", "max-depth"}
    assert params["n-estimators"].default == "100" and params["n-estimators"].type.value == "string"
    assert train.input_artifacts == []
    outputs = {a.name: _kind(a.kind) for a in train.output_artifacts}
    assert outputs == {"prepared-data": "dataset", "breast-cancer-model": "model", "evaluation-report": "other"}

    score = api.executable.get(scenario_id=SCENARIO, executable_id="sklearn-score")
    assert {a.name: _kind(a.kind) for a in score.input_artifacts} == {"model": "model", "dataset": "dataset"}
    assert [a.name for a in score.output_artifacts] == ["predictions"]
    assert [p.name for p in score.parameters] == ["threshold"]

    versions = api.scenario.query_versions(scenario_id=SCENARIO).resources
    assert [v.id for v in versions] == ["1.0.0"] and versions[0].scenario_id == SCENARIO
    with pytest.raises(AIAPINotFoundException):
        api.executable.get(scenario_id="orchestrator-demo", executable_id="sklearn-train")


# ---------------------------------------------------------------------- 2. artifacts, configurations, runs
def test_train_then_score_with_artifacts_logs_and_metrics(srv: ApiServer, core: AICoreV2Client,
                                                          api: AIAPIV2Client, trained: dict[str, Any]) -> None:
    train_id = trained["execution_id"]
    ex = api.execution.get(train_id)
    assert ex.status == Status.COMPLETED and ex.configuration_id == trained["configuration_id"]
    assert ex.configuration_name == "train-small" and ex.scenario_id == SCENARIO
    assert srv.call("GET", f"/v2/lm/executions/{train_id}")[2]["executableId"] == "sklearn-train"
    outputs = {a.name: a for a in ex.output_artifacts}
    assert set(outputs) == {"prepared-data", "breast-cancer-model", "evaluation-report"}
    model = outputs["breast-cancer-model"]
    assert model.kind == Artifact.Kind.MODEL and model.url.startswith("ai://") and model.execution_id == train_id
    assert api.artifact.get(model.id).url == model.url
    assert {a.id for a in api.artifact.query(execution_id=train_id).resources} == {a.id for a in outputs.values()}

    logs = [x.msg for x in api.execution.query_logs(train_id).data.result]
    assert any("training accuracy" in m for m in logs), logs[-20:]
    assert any("precision" in m for m in logs)
    last = [x.msg for x in api.execution.query_logs(train_id, top=2, order=Order.DESC).data.result]
    assert last == logs[::-1][:2]

    res = core.metrics.query(execution_ids=[train_id]).resources
    assert len(res) == 1 and res[0].execution_id == train_id
    names = {m.name for m in res[0].metrics}
    assert {"precision", "recall", "f1", "train_accuracy", "train_rows"} <= names
    f1 = next(m for m in res[0].metrics if m.name == "f1")
    assert 0.5 < f1.value <= 1.0 and isinstance(f1.timestamp, datetime.datetime)
    assert {t.name for t in res[0].tags} >= {"model", "dataset"}

    # a dataset registered from ai://default/... (file created in the server's object store) ...
    prepared = outputs["prepared-data"]
    test_csv = _local(srv, prepared.url) / "test.csv"
    assert test_csv.is_file()
    ai_dir = srv.home / "objects" / "default" / "default" / "datasets" / "bc-test"
    ai_dir.mkdir(parents=True, exist_ok=True)
    (ai_dir / "test.csv").write_bytes(test_csv.read_bytes())
    ai_ds = api.artifact.create(name="bc-test", kind=Artifact.Kind.DATASET, url="ai://default/datasets/bc-test",
                                scenario_id=SCENARIO, description="held-out rows")
    assert ai_ds.url == "ai://default/datasets/bc-test" and ai_ds.message == "Artifact acknowledged"
    got = api.artifact.get(ai_ds.id)
    assert got.name == "bc-test" and got.kind == Artifact.Kind.DATASET and got.scenario_id == SCENARIO

    # ... and one from a file:// URL under a directory the server shares (ORCHESTRATOR_FILE_ROOTS)
    file_dir = srv.tmp / "shared" / "bc-file"
    file_dir.mkdir(parents=True, exist_ok=True)
    (file_dir / "train.csv").write_bytes(test_csv.read_bytes())
    file_ds = api.artifact.create(name="bc-file", kind=Artifact.Kind.DATASET, url=f"file://{file_dir}",
                                  scenario_id=SCENARIO)
    assert api.artifact.get(file_ds.id).url == f"file://{file_dir}"
    for outside in ("file:///etc", f"file://{srv.home}/admin-token", f"file://{srv.home}/orchestrator.db",
                    f"file://{srv.tmp}/server.log"):  # not shared; the home never; the cwd is not shared
        with pytest.raises(AIAPIInvalidRequestException, match="not under a directory this server shares"):
            api.artifact.create(name="etc", kind=Artifact.Kind.DATASET, url=outside, scenario_id=SCENARIO)

    # score both data sets with the trained model
    for ds, expected_file in ((ai_ds, "test.csv"), (file_ds, "train.csv")):
        cfg = api.configuration.create(
            name=f"score-{ds.id[:6]}", scenario_id=SCENARIO, executable_id="sklearn-score",
            parameter_bindings=[ParameterBinding("threshold", "0.4")],
            input_artifact_bindings=[InputArtifactBinding("model", model.id), InputArtifactBinding("dataset", ds.id)])
        stored = api.configuration.get(cfg.id)
        assert {b.key: b.value for b in stored.parameter_bindings} == {"threshold": "0.4"}
        assert {b.key: b.artifact_id for b in stored.input_artifact_bindings} == {"model": model.id,
                                                                                   "dataset": ds.id}
        eid = run_to_end(api, cfg.id)
        scored = api.execution.get(eid)
        preds = scored.output_artifacts
        assert [a.name for a in preds] == ["predictions"] and preds[0].kind == Artifact.Kind.RESULTSET
        assert preds[0].execution_id == eid
        assert (_local(srv, preds[0].url) / "predictions.csv").read_text().startswith("id,prediction,probability")
        res = core.metrics.query(execution_ids=[eid]).resources[0]
        metrics = {m.name: m.value for m in res.metrics}
        assert metrics["rows_scored"] == 143 and 0.8 < metrics["accuracy"] <= 1.0
        assert {t.name: t.value for t in res.tags}["scored_files"] == expected_file

    # a binding with an unknown key is refused at once
    with pytest.raises(AIAPIInvalidRequestException):
        api.configuration.create(name="bad", scenario_id=SCENARIO, executable_id="sklearn-score",
                                 input_artifact_bindings=[InputArtifactBinding("Model", model.id)])


def _local(srv: ApiServer, url: str) -> Path:
    """Where an ``ai://default/...`` artifact of group default lives (ObjectStore.local_path)."""
    assert url.startswith("ai://default/"), url
    return srv.home / "objects" / "default" / "default" / url[len("ai://default/"):]


def test_a_failing_execution_is_dead_with_the_reason_and_logs(api: AIAPIV2Client, trained: dict[str, Any]) -> None:
    dead_id = trained["dead_id"]
    assert wait_status(api, dead_id, TERMINAL, 30) == Status.DEAD
    ex = api.execution.get(dead_id)
    assert "fit" in ex.status_message and "exit code 1" in ex.status_message
    assert ex.completion_time >= ex.start_time >= ex.submission_time
    assert ex.output_artifacts == []
    logs = [x.msg for x in api.execution.query_logs(dead_id).data.result]
    assert any("has 7 missing values" in m and "ValueError" in m for m in logs), logs[-10:]
    assert any(m.startswith("load | loaded 569 rows") for m in logs), logs[:5]
    assert api.execution.count(status=Status.DEAD) == 1
    assert [e.id for e in api.execution.query(status=Status.DEAD).resources] == [dead_id]


# ---------------------------------------------------------------------- 3. stop
def test_stop_a_long_execution_and_not_a_completed_one(srv: ApiServer, api: AIAPIV2Client,
                                                       trained: dict[str, Any]) -> None:
    marker = f"sdk-sleeper-{uuid.uuid4().hex}"
    template(srv, "sdk-sleeper", [sys.executable, "-c", "import sys, time; time.sleep(60)", marker])
    cfg = api.configuration.create(name="sleeper", scenario_id="sdk-tests", executable_id="sdk-sleeper")
    eid = api.execution.create(configuration_id=cfg.id).id
    other = api.execution.create(configuration_id=cfg.id).id  # deleted below while it runs
    for x in (eid, other):
        assert wait_status(api, x, {Status.RUNNING}, 20) == Status.RUNNING
    deadline = time.monotonic() + 10
    while len(marker_processes(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(marker_processes(marker, eid)) == 1 and len(marker_processes(marker, other)) == 1

    t0 = time.monotonic()
    resp = api.execution.modify(eid, target_status=TargetStatus.STOPPED)
    assert resp.id == eid
    assert wait_status(api, eid, {Status.STOPPED}, 15) == Status.STOPPED
    assert time.monotonic() - t0 < 15
    assert api.execution.get(eid).target_status == TargetStatus.STOPPED
    deadline = time.monotonic() + 5
    while marker_processes(marker, eid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker_processes(marker, eid) == []
    assert len(marker_processes(marker, other)) == 1  # stopping one execution leaves the other alone

    # bulk PATCH in its own group: per-item results, a running execution deleted (and its process gone)
    bulk = api.execution.bulk_modify([BasicModifyRequest(other, TargetStatus.DELETED),
                                      BasicModifyRequest("nonexistent1234", TargetStatus.STOPPED)])
    assert isinstance(bulk.executions[0], BasicResponse) and bulk.executions[0].id == other
    assert isinstance(bulk.executions[1], BulkModifyErrorResponse)
    assert bulk.executions[1].error.code == "NOT_FOUND"
    with pytest.raises(AIAPINotFoundException):
        api.execution.get(other)
    assert other not in {e.id for e in api.execution.query(configuration_id=cfg.id).resources}
    assert api.execution.count(configuration_id=cfg.id) == 1
    deadline = time.monotonic() + 15
    while marker_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker_processes(marker) == []

    with pytest.raises(AIAPIInvalidRequestException) as err:
        api.execution.modify(trained["execution_id"], target_status=TargetStatus.STOPPED)
    assert "cannot be changed" in err.value.error_message
    assert api.execution.get(trained["execution_id"], select="status").status == Status.COMPLETED


# ---------------------------------------------------------------------- 4. $count and the 404 body
def test_counts_match_lists_and_404_body(srv: ApiServer, api: AIAPIV2Client, trained: dict[str, Any]) -> None:
    for client in (api.execution, api.artifact, api.configuration):
        listed = client.query()
        assert client.count() == listed.count == len(listed.resources) > 0
    assert api.execution.count(configuration_id=trained["configuration_id"]) == 1
    assert api.artifact.count(execution_id=trained["execution_id"]) == 3
    assert api.configuration.count(executable_ids=["sklearn-train"]) == len(
        api.configuration.query(executable_ids=["sklearn-train"]).resources) >= 1
    page = api.execution.query(top=1)
    assert len(page.resources) == 1 and page.count == api.execution.count()

    with pytest.raises(AIAPINotFoundException) as err:
        api.execution.get("nonexistent1234")
    assert err.value.status_code == 404 and "nonexistent1234" in err.value.error_message
    status, headers, body = srv.call("GET", "/v2/lm/executions/nonexistent1234")
    assert status == 404 and headers["content-type"].startswith("application/json")
    assert set(body) == {"error"} and body["error"]["code"] == "NOT_FOUND"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    with pytest.raises(AIAPINotFoundException):
        api.artifact.get("nonexistent1234")
    with pytest.raises(AIAPINotFoundException):
        api.configuration.get("nonexistent1234")


# ---------------------------------------------------------------------- 5. resource-group isolation
def test_resource_group_isolation(srv: ApiServer, core: AICoreV2Client, trained: dict[str, Any]) -> None:
    core.resource_groups.create(resource_group_id="team-b")
    assert "team-b" in {g.resource_group_id for g in core.resource_groups.query().resources}
    # an executable in team-b too, so a configuration there fails on the artifact, not the executable
    path = srv.tmp / "team-b.yaml"
    path.write_text((REPO / "workflows" / "sklearn-score.yaml").read_text())
    # (`orchestrator register` writes group default; the service over the same home can target team-b)
    svc = Service(srv.home, rg="team-b")
    try:
        svc.register([str(path)])
    finally:
        svc.store.close()
    b = _core(srv, "team-b")
    assert {e.id for e in b.executable.query(scenario_id=SCENARIO).resources} == {"sklearn-score"}

    train_id = trained["execution_id"]
    model_id = next(a.id for a in core.execution.get(train_id).output_artifacts if a.name == "breast-cancer-model")
    with pytest.raises(AIAPINotFoundException):
        b.execution.get(train_id)
    with pytest.raises(AIAPINotFoundException):
        b.execution.get(train_id, select="status")
    with pytest.raises(AIAPINotFoundException):
        b.artifact.get(model_id)
    with pytest.raises(AIAPINotFoundException):
        b.configuration.get(trained["configuration_id"])
    with pytest.raises(AIAPINotFoundException):
        b.execution.query_logs(train_id)
    assert b.execution.query().resources == [] and b.execution.count() == 0
    assert b.artifact.query().resources == [] and b.artifact.count() == 0
    assert b.configuration.query().resources == [] and b.configuration.count() == 0
    assert b.artifact.count(execution_id=train_id) == 0

    with pytest.raises(AIAPINotFoundException):  # by reference in a body
        b.configuration.create(name="steal", scenario_id=SCENARIO, executable_id="sklearn-score",
                               input_artifact_bindings=[InputArtifactBinding("model", model_id)])
    assert b.configuration.count() == 0
    with pytest.raises(AIAPINotFoundException):
        b.execution.create(configuration_id=trained["configuration_id"])
    with pytest.raises(AIAPINotFoundException):
        b.metrics.query(execution_ids=[train_id])
    with pytest.raises(AIAPINotFoundException):
        b.metrics.modify(execution_id=train_id, tags=[MetricTag("stolen", "yes")])
    with pytest.raises(AIAPINotFoundException):
        b.execution.modify(train_id, target_status=TargetStatus.STOPPED)
    with pytest.raises(AIAPINotFoundException):
        b.metrics.delete(execution_id=train_id)
    with pytest.raises(AIAPINotFoundException):  # one foreign id spoils the whole query
        core.metrics.query(execution_ids=[train_id, "nonexistent1234"])
    assert b.execution.query(configuration_id=trained["configuration_id"]).resources == []
    assert b.execution.count(configuration_id=trained["configuration_id"]) == 0
    with pytest.raises(AIAPINotFoundException):
        _api(srv, "team-b").execution_schedule.create(name="steal", cron="0 1 * * *",
                                                      configuration_id=trained["configuration_id"])
    with pytest.raises(AIAPINotFoundException):
        b.execution.delete(train_id)

    bulk = b.execution.bulk_modify([BasicModifyRequest(train_id, TargetStatus.DELETED)])
    assert len(bulk.executions) == 1 and isinstance(bulk.executions[0], BulkModifyErrorResponse)
    assert bulk.executions[0].id == train_id and bulk.executions[0].error.code == "NOT_FOUND"
    # nothing happened to it in its own group
    assert core.execution.get(train_id).status == Status.COMPLETED
    mine = core.metrics.query(execution_ids=[train_id]).resources[0]
    assert "stolen" not in {t.name for t in mine.tags} and {"precision", "f1"} <= {m.name for m in mine.metrics}
    assert srv.call("GET", f"/v2/lm/executions/{train_id}", rg="team-b")[0] == 404


# ---------------------------------------------------------------------- 6. tracking from inside a step
def test_tracking_from_inside_a_step(srv: ApiServer, core: AICoreV2Client, trained: dict[str, Any]) -> None:
    code = textwrap.dedent("""\
        import datetime, os
        from ai_core_sdk.tracking import Tracking
        from ai_api_client_sdk.models.metric import Metric
        from ai_api_client_sdk.models.metric_tag import MetricTag
        from ai_api_client_sdk.models.metric_custom_info import MetricCustomInfo
        print("endpoint=" + os.environ["AICORE_TRACKING_ENDPOINT"], flush=True)
        print("execution=" + os.environ["AICORE_EXECUTION_ID"], flush=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        t = Tracking()
        t.log_metrics(metrics=[Metric(name="inner", value=0.5, timestamp=now, step=1, labels=[])])
        t.set_tags(tags=[MetricTag(name="from", value="step")])
        t.set_custom_info(custom_info=[MetricCustomInfo(name="note", value="hello")])
        t.log_metrics(metrics=[Metric(name="acc", value=0.75, timestamp=now)], artifact_name="model")
        print("logged", flush=True)
        """)
    template(srv, "sdk-tracker", [sys.executable, "-c", code])
    cfg = core.configuration.create(name="tracker", scenario_id="sdk-tests", executable_id="sdk-tracker")
    eid = run_to_end(core, cfg.id)
    logs = [x.msg for x in core.execution.query_logs(eid).data.result]
    assert any(m.endswith(f"execution={eid}") for m in logs), logs
    endpoint = next(m.split("endpoint=", 1)[1] for m in logs if "endpoint=" in m)
    assert endpoint.startswith(srv.base)

    res = core.metrics.query(execution_ids=[eid]).resources[0]
    inner = [m for m in res.metrics if m.name == "inner"]
    assert len(inner) == 1 and inner[0].value == 0.5 and inner[0].step == 1
    assert {t.name: t.value for t in res.tags} == {"from": "step"}
    assert [(c.name, c.value) for c in res.custom_info] == [("note", "hello")]
    acc = next(m for m in res.metrics if m.name == "acc")
    assert [(lab.name, lab.value) for lab in acc.labels] == [("metrics.ai.sap.com/Artifact.name", "model")]
    assert "inner" not in {m.name for m in core.metrics.query(execution_ids=[trained["execution_id"]])
                           .resources[0].metrics}

    # the capability is for that execution only: another execution id is "not found"
    body = {"executionId": trained["execution_id"],
            "metrics": [{"name": "hijack", "value": 1.0, "timestamp": "2024-01-02T03:04:05Z", "labels": []}]}
    req = urllib.request.Request(f"{endpoint}/api/v1/metrics", data=json.dumps(body).encode(), method="PATCH",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 404
    assert json.loads(err.value.read())["error"]["code"] == "NOT_FOUND"
    assert "hijack" not in {m.name for m in core.metrics.query(execution_ids=[trained["execution_id"]])
                            .resources[0].metrics}


# ---------------------------------------------------------------------- 7. OAuth client credentials
def test_oauth_client_credentials_and_from_env(srv: ApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    created = json.loads(srv.cli("tokens", "create", "--name", "ci", "--role", "run", "--json").stdout)
    secret = created["token"]

    def access_tokens() -> int:
        with sqlite3.connect(srv.home / "orchestrator.db") as db:
            return db.execute("SELECT COUNT(*) FROM tokens WHERE kind='access'").fetchone()[0]

    before = access_tokens()
    c = AICoreV2Client(base_url=f"{srv.base}/v2", auth_url=f"{srv.base}/oauth/token", client_id="any",
                       client_secret=secret, resource_group="default")
    assert SCENARIO in {s.id for s in c.scenario.query().resources}
    assert c.executable.query(scenario_id=SCENARIO).count == 3  # sklearn-train, its MLflow variant, sklearn-score
    c.execution.query()
    assert access_tokens() == before + 1  # the SDK cached the access token over three calls
    with pytest.raises(AIAPIServerException) as denied:  # the access token keeps the client's role (run)
        c.resource_groups.query()
    assert denied.value.status_code == 403

    with pytest.raises(AIAPIAuthenticatorAuthorizationException) as err:  # a wrong secret gets no token
        AICoreV2Client(base_url=f"{srv.base}/v2", auth_url=f"{srv.base}/oauth/token", client_id="any",
                       client_secret="orc_wrong", resource_group="default").scenario.query()
    assert "invalid client credentials" in str(err.value)

    for key in list(os.environ):
        if key.startswith("AICORE_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("VCAP_SERVICES", raising=False)
    monkeypatch.setenv("AICORE_HOME", str(srv.tmp / "aicore-home"))  # no ~/.aicore/config.json
    monkeypatch.setenv("AICORE_BASE_URL", srv.base)
    monkeypatch.setenv("AICORE_AUTH_URL", srv.base)
    monkeypatch.setenv("AICORE_CLIENT_ID", "any")
    monkeypatch.setenv("AICORE_CLIENT_SECRET", secret)
    monkeypatch.setenv("AICORE_RESOURCE_GROUP", "default")
    env_client = AICoreV2Client.from_env()
    assert {"sklearn-train", "sklearn-score", "sklearn-train-mlflow"} == {
        e.id for e in env_client.executable.query(scenario_id=SCENARIO).resources}
    assert access_tokens() == before + 2


# ---------------------------------------------------------------------- 8. schedules
def test_execution_schedules(api: AIAPIV2Client, trained: dict[str, Any]) -> None:
    # (AICoreV2Client has no execution_schedule client; the AI API client has)
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    created = api.execution_schedule.create(name="nightly", cron="0 3 * * *",
                                             configuration_id=trained["configuration_id"], start=start)
    sid = created.id
    got = api.execution_schedule.get(sid)
    assert got.name == "nightly" and got.cron == "0 3 * * *" and got.status == ScheduleStatus.ACTIVE
    assert got.configuration_id == trained["configuration_id"] and got.start.year == 2030
    listed = api.execution_schedule.query(configuration_id=trained["configuration_id"])
    assert [s.id for s in listed.resources] == [sid] and listed.count == 1
    assert api.execution_schedule.count() == 1

    api.execution_schedule.modify(sid, status=ScheduleStatus.INACTIVE, cron="30 4 * * 1")
    got = api.execution_schedule.get(sid)
    assert got.status == ScheduleStatus.INACTIVE and got.cron == "30 4 * * 1"
    assert [s.id for s in api.execution_schedule.query(status=ScheduleStatus.INACTIVE).resources] == [sid]
    assert api.execution_schedule.query(status=ScheduleStatus.ACTIVE).resources == []
    with pytest.raises(AIAPIInvalidRequestException):
        api.execution_schedule.modify(sid, cron="not a cron")

    assert api.execution_schedule.delete(sid).id == sid
    with pytest.raises(AIAPINotFoundException):
        api.execution_schedule.get(sid)
    assert api.execution_schedule.count() == 0


# ---------------------------------------------------------------------- 9. metrics PATCH
def test_metrics_patch_appends_and_upserts(core: AICoreV2Client, srv: ApiServer) -> None:
    template(srv, "sdk-noop", [sys.executable, "-c", "print('noop')"])
    cfg = core.configuration.create(name="noop", scenario_id="sdk-tests", executable_id="sdk-noop")
    eid = run_to_end(core, cfg.id)
    ts = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    core.metrics.modify(execution_id=eid, metrics=[Metric("loss", 0.9, ts, step=0,
                                                         labels=[MetricLabel(name="split", value="train")])],
                        tags=[MetricTag("team", "a"), MetricTag("stage", "dev")],
                        custom_info=[MetricCustomInfo("report", '{"v": 1}')])
    core.metrics.modify(execution_id=eid, metrics=[Metric("loss", 0.4, ts + datetime.timedelta(seconds=1), step=1)],
                        tags=[MetricTag("team", "b")], custom_info=[MetricCustomInfo("report", '{"v": 2}')])
    res = core.metrics.query(execution_ids=[eid]).resources[0]
    loss = sorted((m.step, m.value) for m in res.metrics if m.name == "loss")
    assert loss == [(0, 0.9), (1, 0.4)]
    assert {t.name: t.value for t in res.tags} == {"team": "b", "stage": "dev"}
    assert [(c.name, c.value) for c in res.custom_info] == [("report", '{"v": 2}')]
    first = next(m for m in res.metrics if m.step == 0)
    assert first.timestamp == ts and [(lab.name, lab.value) for lab in first.labels] == [("split", "train")]

    only_tags = core.metrics.query(execution_ids=[eid], select=["tags"]).resources[0]
    assert {t.name for t in only_tags.tags} == {"team", "stage"} and not only_tags.metrics

    # SAP's Tracking class outside a step goes through the same endpoint
    tracking = Tracking(base_url=f"{srv.base}/v2", token_creator=lambda: "Bearer " + srv.token,
                        resource_group="default")
    tracking.log_metrics(metrics=[Metric("loss", 0.1, ts, step=2)], execution_id=eid)
    assert sorted(m.step for m in tracking.query(execution_ids=[eid]).resources[0].metrics if m.name == "loss") \
        == [0, 1, 2]

    # at most 1000 metrics per PATCH: 413 above (reference §4.5), nothing stored
    batch = [Metric("bulk", float(i), ts, step=i) for i in range(1001)]
    with pytest.raises(AIAPIServerException) as big:
        core.metrics.modify(execution_id=eid, metrics=batch)
    assert big.value.status_code == 413
    core.metrics.modify(execution_id=eid, metrics=batch[:1000])
    assert sum(m.name == "bulk" for m in core.metrics.query(execution_ids=[eid]).resources[0].metrics) == 1000

    core.metrics.delete(execution_id=eid)
    res = core.metrics.query(execution_ids=[eid]).resources[0]
    assert res.metrics == [] and res.tags == [] and res.custom_info == []
