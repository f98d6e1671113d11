"""What a new user tripped over walking through the README, fixed: each test replays the command.

One tiny template (one script step: a model output, two points of ``loss`` with the goal ``min``
and a tag) runs once per module on the local store; the server test runs it once through
``orchestrator serve`` and reads it back with id prefixes, as the local commands allow.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, template
from tests.integration.conftest import ApiServer

TINY = template("tiny-model", """
- name: main
  outputs:
    artifacts:
      - name: model
        path: /app/model
        globalName: model
  script:
    image: python:3.11
    command: [python3]
    env:
      - name: OUT
        value: "{{outputs.artifacts.model.path}}"
    source: |
      import os
      from orchestrator import tracking
      os.makedirs(os.environ["OUT"], exist_ok=True)
      with open(os.path.join(os.environ["OUT"], "m.txt"), "w") as f:
          f.write("m")
      tracking.log_metric("loss", 0.5, step=1)
      tracking.log_metric("loss", 0.25, step=2)
      tracking.set_tags({"kind": "tiny"})
""", annotations="""
artifacts.ai.sap.com/model.kind: model
orchestrator/metrics: "loss:min"
""", params="- name: p\n  value: '1'")

NEEDS_DATA = template("needs-data", """
- name: main
  inputs:
    artifacts:
      - name: data
        path: /app/data
  container:
    image: busybox
    command: [cat, "{{inputs.artifacts.data.path}}"]
""")

NEEDS_SECRET = template("needs-secret", """
- name: main
  container:
    image: busybox
    command: [sh, -c, 'test -n "$T"']
    env:
      - name: T
        valueFrom: {secretKeyRef: {name: api-key, key: token}}
""")

WITH_EXIT = template("with-exit", """
- name: main
  container: {image: busybox, command: [sh, -c, "echo work"]}
- name: bye
  container: {image: busybox, command: [sh, -c, "echo notify {{workflow.status}}"]}
""", spec_extra="  onExit: bye\n")

SDK_TRACKING = template("sdk-tracking", """
- name: main
  script:
    image: python:3.11
    command: [python3]
    source: |
      import json, os, urllib.error, urllib.request
      from datetime import datetime, timezone
      from ai_core_sdk.models import Metric, MetricTag
      from ai_core_sdk.tracking import Tracking
      Tracking().log_metrics(metrics=[Metric(name="sdk_acc", value=0.9, timestamp=datetime.now(timezone.utc),
                                             step=1)])
      Tracking().set_tags(tags=[MetricTag(name="via", value="ai_core_sdk")])
      def patch(url, body):
          req = urllib.request.Request(url, json.dumps(body).encode(), method="PATCH",
                                       headers={"Content-Type": "application/json"})
          try:
              return urllib.request.urlopen(req).status
          except urllib.error.HTTPError as exc:
              return exc.code
      url = os.environ["AICORE_TRACKING_ENDPOINT"] + "/api/v1/metrics"
      wrong = url.replace("/aicore/", "/aicore/x")
      print("other execution", patch(url, {"executionId": "0123456789abcdef", "metrics": []}))
      print("wrong capability", patch(wrong, {"executionId": os.environ["AICORE_EXECUTION_ID"]}))
      print("not a number", patch(url, {"executionId": os.environ["AICORE_EXECUTION_ID"],
                                        "metrics": [{"name": "x", "value": "1"}]}))
""")


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, str]:
    cli = Cli(tmp_path_factory.mktemp("walk"))
    cli.write("tiny.yaml", TINY)
    ex = cli.run_json("tiny.yaml")
    assert ex["status"] == "COMPLETED", ex
    return cli, ex["id"]


def test_models_register_says_when_the_version_existed_and_where_the_alias_points(walk: tuple[Cli, str]) -> None:
    cli, eid = walk
    first = cli("models", "register", "tiny", "--execution", eid[:6], check=0).stdout
    assert first.startswith("registered tiny version 1 "), first
    again = cli("models", "register", "tiny", "--execution", eid[:6], "--alias", "champion", check=0).stdout
    assert again.startswith("already registered as tiny version 1 "), again
    assert "alias champion -> version 1" in again, again


def test_configuration_ids_are_found_and_schedules_take_prefixes(walk: tuple[Cli, str]) -> None:
    cli, eid = walk
    shown = cli("executions", "show", eid, check=0).stdout
    m = re.search(r"configuration ([0-9a-f-]{36})\n", shown)
    assert m, shown
    cfg = m.group(1)
    created = cli("schedules", "create", "--name", "n", "--cron", "@daily", "--configuration", cfg[:6],
                  "--inactive", "--json")
    assert created.returncode == 0, created.stderr
    sid = cli.json("schedules", "list")[0]["id"]
    show = cli("schedules", "show", sid[:5], check=0).stdout
    assert sid in show and cfg in show
    assert sid in cli("executions", "list", "--schedule", sid[:5], check=0).stdout
    assert "ACTIVE" in cli("schedules", "activate", sid[:5], check=0).stdout
    missing = cli("schedules", "show", "zzzz", check=2)
    assert "schedule 'zzzz' not found" in missing.stderr and "schedules list" in missing.stderr
    no_cfg = cli("schedules", "create", "--name", "m", "--cron", "@daily", "--configuration", "no-such-cfg", check=2)
    assert "orchestrator configurations" in no_cfg.stderr  # where configuration ids are listed


def test_object_stores_show_gives_every_field_and_the_local_directory(walk: tuple[Cli, str]) -> None:
    cli, _ = walk
    cli("object-stores", "create", "scratch", "--type", "local", check=0)
    local = cli("object-stores", "show", "scratch", check=0).stdout
    assert str(cli.home / "objects" / "default" / "scratch") in local, local
    cli("object-stores", "create", "lake", "--bucket", "ml-bucket", "--endpoint", "127.0.0.1:9", "--usehttps", "0",
        "--region", "eu-central-1", "--access-key-env", "K", "--secret-key-env", "S",
        env={"K": "key-id", "S": "not-printed"}, check=0)
    s3 = cli("object-stores", "show", "lake", check=0).stdout
    assert "s3://ml-bucket/" in s3 and "eu-central-1" in s3 and "s3-usehttps: 0" in s3, s3
    assert "not-printed" not in s3 and "key-id" not in s3


def test_small_messages(walk: tuple[Cli, str]) -> None:
    cli, _ = walk
    tok = cli("tokens", "create", "--name", "t", "--role", "read", "--resource-group", "team-x", check=2)
    assert "--resource-group team-x run" in tok.stderr, tok.stderr
    cli.write("needs.yaml", NEEDS_DATA)
    bad = cli("run", "needs.yaml", "--artifact", "data=./nope.csv", check=2)
    assert "input artifact 'data': no such file or directory: ./nope.csv" in bad.stderr, bad.stderr
    deploy = cli("deploy", "needs.yaml", check=2)  # a batch template handed to deploy says what to do instead
    assert "orchestrator run needs.yaml" in deploy.stderr and "deploy --model" in deploy.stderr, deploy.stderr
    unbound = cli("run", "needs.yaml", check=2)
    assert "models:/NAME@ALIAS" in unbound.stderr and "artifact id" in unbound.stderr
    subprocess.run(["git", "init", "-q", "--bare", str(cli.tmp / "r.git")], check=True, timeout=60)
    added = cli("repos", "add", "r", "r.git", check=0).stdout  # a relative path, from your own command line
    assert f"({cli.tmp / 'r.git'})" in added, added
    cli.write("d.csv", "a\n1\n")
    art = cli("assets", "register", "ds", "d.csv", "--version", "1", check=0).stdout
    full = re.search(r"artifact ([0-9a-f-]{36})", art)
    assert full, art
    assert full.group(1) in cli("assets", "list", check=0, env={"COLUMNS": "250"}).stdout
    shown = cli("artifacts", "show", full.group(1), check=0).stdout  # no execution made it: no "None" line
    assert "None" not in shown and "url: ai://default/assets/ds/1" in shown, shown
    assert re.search(r"digest: [0-9a-f]{64}\n", shown) and "size: 4\n" in shown, shown  # measured, not 0


def test_a_missing_secret_says_how_to_create_it_and_offers_resume(walk: tuple[Cli, str]) -> None:
    cli, _ = walk
    cli.write("secret.yaml", NEEDS_SECRET)
    dead = cli("run", "secret.yaml", "-q", check=1)
    assert "orchestrator secrets create api-key --key token" in dead.stderr, dead.stderr
    assert "no resume" not in dead.stderr  # the values were fine: the store lacked the secret
    eid = dead.stdout.split()[0]
    assert f"resume: orchestrator executions resume {eid}" in dead.stderr
    created = subprocess.run([sys.executable, "-m", "orchestrator", "secrets", "create", "api-key", "--key", "token"],
                             input="s3cret", capture_output=True, text=True, env=cli.env, cwd=cli.tmp, timeout=60)
    assert created.returncode == 0, created.stderr
    assert "COMPLETED" in cli("executions", "resume", eid, "-q", check=0).stdout


def test_init_dir_creates_the_store_there_even_with_a_home_set(walk: tuple[Cli, str]) -> None:
    cli, _ = walk
    p = cli("init", "elsewhere", check=0)  # $ORCHESTRATOR_HOME is set by the Cli helper
    assert (cli.tmp / "elsewhere" / ".orchestrator" / "orchestrator.db").is_file(), p.stdout
    assert "note: $ORCHESTRATOR_HOME names" in p.stderr, p.stderr


def test_a_container_run_is_never_answered_by_a_host_run_from_the_cache(tmp_path: Path) -> None:
    from tests.integration import container_images

    image = container_images.busybox_image(tmp_path)  # skips without podman
    cli = Cli(tmp_path)
    cli.write("echo.yaml", template("echo-once", f"""
- name: main
  container: {{image: "{image}", command: [sh, -c, "echo ran"]}}
"""))
    assert cli.run_json("echo.yaml")["status"] == "COMPLETED"  # on the host: the image is only recorded
    boxed = cli.run_json("echo.yaml", env={"ORCHESTRATOR_EXECUTOR": "podman", "ORCHESTRATOR_PULL_POLICY": "Never"})
    assert boxed["status"] == "COMPLETED", boxed
    why = {i["step"]: i for i in cli.json("executions", "explain", boxed["id"])}
    assert why["main"]["state"] == "SUCCEEDED" and "executor: null → 'container'" in why["main"]["note"], why
    again = cli.run_json("echo.yaml", env={"ORCHESTRATOR_EXECUTOR": "podman", "ORCHESTRATOR_PULL_POLICY": "Never"})
    assert cli.json("executions", "explain", again["id"])[0]["state"] == "CACHED"  # container runs share the cache


def test_an_exit_handler_runs_every_time(walk: tuple[Cli, str]) -> None:
    cli, _ = walk
    cli.write("exit.yaml", WITH_EXIT)
    cli.run_json("exit.yaml")
    again = cli.run_json("exit.yaml")
    why = {i["step"]: i for i in cli.json("executions", "explain", again["id"])}
    assert why["main"]["state"] == "CACHED", why  # an ordinary step is answered from the cache ...
    assert why["onExit"]["state"] == "SUCCEEDED" and "exit handler" in why["onExit"]["note"], why  # ... a handler runs
    assert "notify Succeeded" in cli("logs", again["id"], "--step", "onExit", check=0).stdout


def test_sap_sdk_tracking_in_a_local_run_lands_in_the_store(walk: tuple[Cli, str]) -> None:
    cli, _ = walk
    cli.write("sdk.yaml", SDK_TRACKING)
    first = cli.run_json("sdk.yaml")
    log = cli("logs", first["id"], check=0).stdout
    assert "Metrics logged will not be persisted" not in log, log  # the SDK found an endpoint
    assert "other execution 404" in log and "wrong capability 401" in log and "not a number 400" in log, log
    metrics = cli.json("metrics", first["id"])
    assert [(m["name"], m["value"], m["step"]) for m in metrics["metrics"]] == [("sdk_acc", 0.9, 1)], metrics
    assert {"name": "via", "value": "ai_core_sdk"} in metrics["tags"]
    again = cli.run_json("sdk.yaml")  # answered from the step cache: the step's metrics come along
    assert cli.json("executions", "explain", again["id"])[0]["state"] == "CACHED"
    assert [m["name"] for m in cli.json("metrics", again["id"])["metrics"]] == ["sdk_acc"]


@pytest.mark.parametrize("name", ["sklearn-train.yaml", "sklearn-train-mlflow.yaml"])
def test_compare_without_sort_ranks_the_shipped_training_by_held_out_accuracy(name: str) -> None:
    import yaml

    from orchestrator.control.goals import METRICS_ANNOTATION

    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "workflows" / name).read_text())
    first = doc["metadata"]["annotations"][METRICS_ANNOTATION].split(",")[0]
    assert first == "test_accuracy:max"  # compare marked the most overfit run (train_accuracy_by_trees) best


def test_an_azure_ml_job_is_not_told_to_annotate_a_template(walk: tuple[Cli, str]) -> None:
    cli, _ = walk
    cli.write("job.yml", "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
              "command: >-\n  python3 -c \"from orchestrator import tracking as t; t.log_metric('acc', 0.5, step=1); "
              "t.log_metric('acc', 0.7, step=2)\"\nexperiment_name: walk-azure\n")
    job = cli.run_json("job.yml")
    shown = cli("metrics", job["id"], check=0, env={"COLUMNS": "300"})  # the note is not wrapped
    note = shown.stdout + shown.stderr
    assert "an Azure ML job declares no goals" in note and "--sort NAME:max" in note, note
    assert "declare it in the template" not in note


def test_missing_store_hint_names_the_home(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "orchestrator", "executions"], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "ORCHESTRATOR_HOME": str(tmp_path / "nowhere")}, cwd=tmp_path,
                       timeout=60)
    assert p.returncode == 2
    assert f"creates it at {tmp_path / 'nowhere'}" in p.stderr, p.stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    (tmp_path / "wf").mkdir()
    (tmp_path / "wf" / "tiny.yaml").write_text(TINY)
    srv = ApiServer(tmp_path, "--workflows", str(tmp_path / "wf"))
    try:
        yield srv
    finally:
        srv.stop()


def test_server_commands_take_id_prefixes_and_show_goals(server: ApiServer) -> None:
    server.env.update({"ORCHESTRATOR_SERVER": server.base, "ORCHESTRATOR_TOKEN": server.token})
    run = server.cli("run", "tiny-model", "-q", "--json")
    ex = json.loads(run.stdout)
    eid, model = ex["id"], ex["outputArtifacts"][0]["id"]
    shown = server.cli("executions", "show", eid[:5]).stdout
    assert eid in shown and "configuration " in shown and "loss" in shown, shown  # ... and its metrics
    server.env["COLUMNS"] = "200"
    listed = server.cli("executions").stdout
    assert "duration" in listed and re.search(rf"{eid} .*\d\.\ds", listed), listed  # as the local list
    assert model in server.cli("artifacts", "show", model[:6]).stdout
    metrics = server.cli("metrics", eid[:5]).stdout
    row = next(line for line in metrics.splitlines() if "loss" in line)
    assert "min" in row and "0.25 @2" in row, metrics  # the template's goal, and the best value
    assert "kind" in metrics and "tiny" in metrics  # the tags, as locally
    assert eid in server.cli("compare", eid[:5], "--json").stdout
    first = server.cli("models", "register", "tiny", "--execution", eid[:5]).stdout
    assert first.startswith("registered tiny version 1"), first
    again = server.cli("models", "register", "tiny", "--execution", eid[:5], "--alias", "champion").stdout
    assert again.startswith("already registered as tiny version 1") and "alias champion -> version 1" in again, again
    missing = server.cli("logs", "zzzzzz", check=2)
    assert "execution 'zzzzzz' not found" in missing.stderr
    short = server.cli("logs", eid[:2], check=2)
    assert "at least 4 characters" in short.stderr
    dep = server.cli("deployments", "show", "abcd", check=2)  # looked up as a prefix on the server too
    assert f"deployment 'abcd' not found on {server.base}" in dep.stderr, dep.stderr
    # sweeps work with --server too (they said "sweeps does not work with --server")
    sweep = {"apiVersion": "orchestrator/v1", "kind": "Sweep", "metadata": {"name": "tiny-sweep"},
             "spec": {"trial": {"executableId": "tiny-model"},
                      "searchSpace": {"p": {"type": "choice", "values": [1, 2]}},
                      "samplingAlgorithm": {"type": "grid"}, "objective": {"primaryMetric": "loss", "goal": "minimize"},
                      "limits": {"maxTotalTrials": 2, "maxConcurrentTrials": 1}}}
    status, _, created = server.call("POST", "/v2/lm/sweeps", sweep)
    assert status == 202, created
    sid = created["id"]
    assert sid in server.cli("sweeps", "list").stdout
    deadline = time.monotonic() + 60
    while json.loads(server.cli("sweeps", "show", sid[:6], "--json").stdout)["status"] not in ("COMPLETED", "DEAD"):
        assert time.monotonic() < deadline, "the sweep did not end"
        time.sleep(0.3)
    table = server.cli("sweeps", "show", sid[:6]).stdout
    assert "tiny-sweep: COMPLETED" in table and "best: trial execution" in table, table
    missing = server.cli("sweeps", "stop", "zzzz", check=2)
    assert f"sweep 'zzzz' not found on {server.base}" in missing.stderr, missing.stderr
    # the dashboard calls a rerun a rerun (it said "resumed as" for every child execution)
    del server.env["ORCHESTRATOR_SERVER"]
    child = json.loads(server.cli("executions", "rerun", eid, "--from", "main", "-q", "--json").stdout)["id"]
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login = browser.open(server.base + "/ui/login", timeout=30).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', login)
    assert csrf, login
    form = {"csrf": csrf.group(1), "token": server.token, "next": "/ui/executions"}
    browser.open(server.base + "/ui/login", data=urllib.parse.urlencode(form).encode(), timeout=30).read()
    page = browser.open(f"{server.base}/ui/executions/{eid}", timeout=30).read().decode()
    assert f"resumed or rerun as: <a class=\"mono\" href=\"/ui/executions/{child}\"" in page
