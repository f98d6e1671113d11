"""Compare and the model registry end to end: real runs of a small training template, the CLI as
subprocesses (``compare``, ``models ...``) and a real server (``/v2/lm/compare``, ``/v2/lm/models``)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from orchestrator.api import models_experiments as mx
from tests.conftest import Cli
from tests.integration.conftest import ApiServer

TRAIN = """apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: tiny-train
  labels:
    scenarios.ai.sap.com/id: tiny
    ai.sap.com/version: "1.0"
  annotations:
    scenarios.ai.sap.com/name: tiny
    executables.ai.sap.com/name: tiny-train
    artifacts.ai.sap.com/tiny-model.kind: model
    artifacts.ai.sap.com/tiny-report.kind: other
    orchestrator/metrics: "loss:min,auc:max"
spec:
  entrypoint: train
  arguments:
    parameters:
      - name: lr
        value: "0.1"
      - name: depth
        value: "3"
  templates:
    - name: train
      inputs:
        parameters:
          - name: lr
      outputs:
        artifacts:
          - name: model
            globalName: tiny-model
            path: /app/model/
            archive: {none: {}}
          - name: report
            globalName: tiny-report
            path: /app/report/
            archive: {none: {}}
      script:
        image: python:3.11-slim
        command: [python3]
        env:
          - name: LR
            value: "{{inputs.parameters.lr}}"
          - name: OUT
            value: "{{outputs.artifacts.model.path}}"
          - name: REP
            value: "{{outputs.artifacts.report.path}}"
        source: |
          import os
          from orchestrator import tracking
          lr = float(os.environ["LR"])
          for i in range(5):
              tracking.log_metric("loss", 1.0 / (1 + i * lr), step=i)
          tracking.log_metric("auc", 0.5 + lr, step=4)
          for d, f in (("OUT", "model.txt"), ("REP", "r.txt")):
              os.makedirs(os.environ[d], exist_ok=True)
              open(os.path.join(os.environ[d], f), "w").write(str(lr))
"""


def _train(run: Any, tmp: Path, lrs: tuple[str, ...]) -> dict[str, str]:
    """Run the template once per learning rate; ``{lr: execution id}``."""
    path = tmp / "train.yaml"
    path.write_text(TRAIN)
    out = {}
    for lr in lrs:
        p = run("run", str(path), "-p", f"lr={lr}", "-q", "--json")
        ex = json.loads(p.stdout)
        assert ex["status"] == "COMPLETED", p.stdout + p.stderr
        out[lr] = ex["id"]
    return out


def test_compare_and_models_cli(cli: Cli, tmp_path: Path) -> None:
    ids = _train(lambda *a: cli(*a, check=0), tmp_path, ("0.1", "0.3", "0.2"))
    res = cli.json("compare", "--scenario", "tiny")
    assert res["count"] == 3 and res["differingParameters"] == ["lr"] and res["parameters"] == ["depth", "lr"]
    assert res["sort"] == {"metric": "loss", "goal": "min"} and res["bestExecutionId"] == ids["0.3"]
    assert [r["parameters"]["lr"] for r in res["executions"]] == ["0.3", "0.2", "0.1"]
    top = res["executions"][0]
    assert top["best"] and top["metrics"]["loss"]["count"] == 5 and top["metrics"]["auc"]["last"] == 0.8
    by_auc = cli.json("compare", ids["0.1"][:6], ids["0.2"], "--sort", "auc")
    assert by_auc["bestExecutionId"] == ids["0.2"] and by_auc["count"] == 2
    rows = list(csv.reader(io.StringIO(cli("compare", "--executable", "tiny-train", "--csv", check=0).stdout)))
    assert rows[0][:4] == ["id", "status", "duration", "best"] and "param:lr" in rows[0] and len(rows) == 4
    table = cli("compare", "--scenario", "tiny", check=0, env={"COLUMNS": "80"}).stdout
    assert all(i in table for i in ids.values()) and "same in all: depth=3" in table
    assert "no declared goal" in cli("compare", "--scenario", "tiny", "--sort", "other", check=2).stderr
    assert "not found" in cli("compare", "ffffffffffffffff", check=2).stderr

    # register: the best run's model, aliased champion; refusals are exit 2 with the reason
    v1 = cli.json("models", "register", "tiny", "--execution", ids["0.3"][:6], "--alias", "champion",
                  "--tag", "lr=0.3")
    assert (v1["version"], v1["aliases"], v1["executionId"]) == (1, ["champion"], ids["0.3"])
    assert len(v1["sha256"]) == 64
    assert "not a model" in cli("models", "register", "tiny", "--execution", ids["0.1"], "--output", "tiny-report",
                                check=2).stderr
    assert "bad model name" in cli("models", "register", "a/b", "--execution", ids["0.1"], check=2).stderr
    v2 = cli.json("models", "register", "tiny", "--execution", ids["0.2"], "--output", "tiny-model")
    assert v2["version"] == 2

    # the trained model of a run, and a version's lineage
    [mine] = cli.json("models", "list", "--execution", ids["0.3"])
    assert (mine["model"], mine["version"]) == ("tiny", 1)
    assert cli.json("models", "list", "--execution", ids["0.1"]) == []
    shown = cli.json("models", "show", "tiny", "--version", "champion")
    lineage = shown["lineage"]
    assert shown["version"] == 1 and {"name": "lr", "value": "0.3"} in lineage["parameters"]
    assert lineage["execution"]["status"] == "COMPLETED" and lineage["artifact"]["digestMatches"]
    assert [m["name"] for m in lineage["metrics"]] == ["loss", "auc"]
    model = cli.json("models", "show", "tiny")
    assert model["latestVersion"] == 2 and model["aliases"] == {"champion": 1}

    # aliases move atomically; a stale --expect is refused, unalias removes
    assert cli.json("models", "alias", "tiny", "champion", "2", "--expect", "1")["previousVersion"] == 1
    assert "names version 2 now" in cli("models", "alias", "tiny", "champion", "1", "--expect", "1", check=2).stderr
    assert "removed tiny@champion (was version 2)" in cli("models", "unalias", "tiny", "champion", check=0).stdout
    assert "no alias" in cli("models", "show", "tiny", "--version", "champion", check=2).stderr
    listed = cli("models", "list", check=0, env={"COLUMNS": "80"}).stdout
    assert "tiny" in listed


def _ok(answer: tuple[int, dict[str, str], Any], status: int = 200) -> Any:
    code, _, body = answer
    assert code == status, (code, body)
    return body


def test_compare_and_models_rest(tmp_path: Path) -> None:
    srv = ApiServer(tmp_path)
    try:
        ids = _train(lambda *a: srv.cli(*a), tmp_path, ("0.1", "0.3"))
        res = _ok(srv.call("GET", "/v2/lm/compare?scenarioId=tiny"))
        mx.CompareOut.model_validate(res)  # the published schema describes the answer
        assert res["count"] == 2 and res["bestExecutionId"] == ids["0.3"] and len(res["resources"]) == 2
        assert res["resources"][0]["metrics"]["loss"]["goal"] == "min"
        res = _ok(srv.call("GET", f"/v2/lm/compare?executionIds={ids['0.1']},{ids['0.3']}&sort=auc:min&$skip=1"))
        assert res["bestExecutionId"] == ids["0.1"] and [r["id"] for r in res["resources"]] == [ids["0.3"]]
        code, _, err = srv.call("GET", "/v2/lm/compare?executionIds=ffffffffffffffff")
        assert code == 404 and err["error"]["code"] == "NOT_FOUND"
        assert srv.call("GET", "/v2/lm/compare")[0] == 400

        made = _ok(srv.call("POST", "/v2/lm/models/tiny/versions", {"executionId": ids["0.3"],
                                                                   "tags": [{"key": "k", "value": "v"}]}), 201)
        assert made["version"] == 1 and made["tags"] == [{"key": "k", "value": "v"}]
        code, _, err = srv.call("POST", "/v2/lm/models/tiny/versions", {"executionId": ids["0.1"],
                                                                       "output": "tiny-report"})
        assert code == 400 and "not a model" in err["error"]["message"]
        _ok(srv.call("POST", "/v2/lm/models/tiny/versions", {"executionId": ids["0.1"]}), 201)

        listed = _ok(srv.call("GET", f"/v2/lm/models?executionId={ids['0.3']}"))
        mx.RegisteredModelList.model_validate(listed)
        assert listed["count"] == 1 and [v["version"] for v in listed["resources"][0]["versions"]] == [1]
        assert _ok(srv.call("GET", "/v2/lm/models?$top=0"))["resources"] == []
        assert _ok(srv.call("GET", "/v2/lm/models/$count")) == 1
        assert _ok(srv.call("GET", f"/v2/lm/models/$count?executionId={ids['0.1']}")) == 1
        page = _ok(srv.call("GET", "/v2/lm/models/tiny/versions?$top=1&$skip=1"))
        assert page["count"] == 2 and [v["version"] for v in page["resources"]] == [1]
        one = _ok(srv.call("GET", "/v2/lm/models/tiny/versions/1"))
        mx.ModelVersionOut.model_validate(one)
        mx.ModelVersionList.model_validate(page)
        patched = _ok(srv.call("PATCH", "/v2/lm/models/tiny/versions/1",
                               {"description": "best lr", "tags": [{"key": "k", "value": ""}, {"key": "s", "value": "1"}]}))
        assert (patched["description"], patched["tags"]) == ("best lr", [{"key": "s", "value": "1"}])
        assert srv.call("PATCH", "/v2/lm/models/tiny/versions/9", {"description": "x"})[0] == 404
        assert one["lineage"]["execution"]["id"] == ids["0.3"]

        moved = _ok(srv.call("PUT", "/v2/lm/models/tiny/aliases/champion", {"version": 1}))
        assert moved["previousVersion"] is None
        code, _, err = srv.call("PUT", "/v2/lm/models/tiny/aliases/champion", {"version": 2, "expectedVersion": 2})
        assert code == 400 and err["error"]["code"] == "INVALID_STATE"
        assert _ok(srv.call("GET", "/v2/lm/models/tiny/aliases/champion"))["version"] == 1
        assert _ok(srv.call("GET", "/v2/lm/models/tiny"))["aliases"] == [{"alias": "champion", "version": 1}]
        assert _ok(srv.call("DELETE", "/v2/lm/models/tiny/aliases/champion"))["previousVersion"] == 1
        assert srv.call("GET", "/v2/lm/models/tiny/aliases/champion")[0] == 404

        # another resource group sees none of it
        _ok(srv.call("POST", "/v2/admin/resourceGroups", {"resourceGroupId": "team-b"}, rg=None), 202)
        assert _ok(srv.call("GET", "/v2/lm/models", rg="team-b"))["count"] == 0
        assert srv.call("GET", "/v2/lm/models/tiny", rg="team-b")[0] == 404
        assert srv.call("GET", f"/v2/lm/compare?executionIds={ids['0.1']}", rg="team-b")[0] == 404
        code, _, err = srv.call("POST", "/v2/lm/models/tiny/versions", {"executionId": ids["0.1"]}, rg="team-b")
        assert code == 404 and err["error"]["code"] == "NOT_FOUND"

        paths = _ok(srv.call("GET", "/openapi.json", rg=None))["paths"]
        assert "/v2/lm/compare" in paths and "/v2/lm/models/{name}/aliases/{alias}" in paths
    finally:
        srv.stop()


def test_register_on_success_annotation(cli: Cli, tmp_path: Path) -> None:
    text = TRAIN.replace('    orchestrator/metrics: "loss:min,auc:max"\n',
                         '    orchestrator/metrics: "loss:min,auc:max"\n'
                         '    orchestrator/register-model.tiny-model: tiny-auto\n'
                         '    orchestrator/register-model.tiny-report: not-a-model\n')
    path = tmp_path / "auto.yaml"
    path.write_text(text)
    ex = cli.json("run", str(path), "-q")
    assert ex["status"] == "COMPLETED"
    [v] = cli.json("models", "list", "--execution", ex["id"])
    assert (v["model"], v["version"], v["description"]) == ("tiny-auto", 1,
                                                            f"registered on success of execution {ex['id']}")
    tags = {t["name"]: t["value"] for t in cli.json("metrics", ex["id"])["tags"]}
    assert tags["orchestrator/registered-model.tiny-model"] == "tiny-auto:1"
    assert "not a model" in tags["orchestrator/register-model-error.tiny-report"]
