"""More of what a new user tripped over walking through the README, fixed: each test replays it.

Locally: configurations are listed and named (``configurations``, ``schedules create
--configuration NAME``), a schedule shows its effective start, an INACTIVE schedule is not
backfilled by accident, ``apps`` JSON is camelCase. Through one ``orchestrator serve``: the
OpenAPI document opens without a token (nothing else does), configurations list with
``--server``, and an Azure ML job run with ``--server`` records its job file as its source.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, template
from tests.integration.conftest import REPO, ApiServer

ECHO = template("cfg-one", """
- name: main
  inputs:
    parameters:
      - name: p
  container: {image: busybox, command: [sh, -c, "echo {{inputs.parameters.p}}"]}
""", params="- name: p\n  value: '1'")
TWO = ECHO.replace("cfg-one", "cfg-two")
CFG_KEYS = {"id", "name", "scenarioId", "executableId", "parameterBindings", "inputArtifactBindings", "createdAt"}


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, list[str], list[str]]:
    """cfg-one run twice with the same value (one configuration name, the same bindings), cfg-two
    with two values (one name, different bindings); the configuration ids of each, oldest first."""
    cli = Cli(tmp_path_factory.mktemp("walk2"))
    cli.write("one.yaml", ECHO)
    cli.write("two.yaml", TWO)
    one = [cli.run_json("one.yaml", "--no-cache")["configurationId"] for _ in range(2)]
    two = [cli.run_json("two.yaml", "-p", f"p={v}", "--no-cache")["configurationId"] for v in (1, 2)]
    return cli, one, two


def test_configurations_are_listed_and_shown_by_id_prefix_or_name(walk: tuple[Cli, list[str], list[str]]) -> None:
    cli, one, two = walk
    listed = cli.json("configurations")
    assert {c["id"] for c in listed} == {*one, *two} and all(set(c) == CFG_KEYS for c in listed), listed
    bindings = {c["id"]: c["parameterBindings"] for c in listed}
    assert bindings[two[1]] == [{"key": "p", "value": "2"}]  # the AI API's shape
    assert [c["id"] for c in cli.json("configurations", "list", "--executable", "cfg-two")] == two[::-1]
    table = cli("configurations", check=0, env={"COLUMNS": "250"}).stdout
    assert two[0] in table and "cfg-two-cli" in table and "p=2" in table, table
    assert cli.json("configurations", "show", one[0][:8])["id"] == one[0]
    assert cli.json("configurations", "show", "cfg-one-cli")["id"] == one[1]  # same bindings: the newest
    shown = cli("configurations", "show", two[1], check=0).stdout
    assert "executable  cfg-two" in shown and "parameter   p = 2" in shown, shown
    ambiguous = cli("configurations", "show", "cfg-two-cli", check=2)
    assert "ambiguous" in ambiguous.stderr and two[0] in ambiguous.stderr and two[1] in ambiguous.stderr
    missing = cli("configurations", "show", "no-such", check=2)
    assert "configuration 'no-such' not found" in missing.stderr and "orchestrator configurations" in missing.stderr


def test_schedules_take_a_configuration_name_and_show_the_effective_start(
        walk: tuple[Cli, list[str], list[str]]) -> None:
    cli, one, two = walk
    created = cli.json("schedules", "create", "--name", "by-name", "--cron", "@daily", "--configuration",
                       "cfg-one-cli", "--inactive")
    assert created["configurationId"] == one[1], created
    bad = cli("schedules", "create", "--name", "amb", "--cron", "@daily", "--configuration", "cfg-two-cli", check=2)
    assert "ambiguous" in bad.stderr and two[0] in bad.stderr, bad.stderr
    assert [s["name"] for s in cli.json("schedules", "list")] == ["by-name"]  # nothing written for the refused one
    shown = cli("schedules", "show", created["id"], check=0).stdout
    start = re.search(r"^\s*start: (\S*)", shown, re.M)
    assert start and start.group(1) == created["createdAt"], shown  # was an empty "start:"
    batch = cli("deploy", "--configuration", "cfg-one-cli", check=2)  # deploy takes a name too: found, refused
    assert f"configuration {one[1]} is for executable 'cfg-one'" in batch.stderr, batch.stderr


def test_an_inactive_schedule_is_not_backfilled_without_saying_so(walk: tuple[Cli, list[str], list[str]]) -> None:
    cli, one, _ = walk
    sid = cli.json("schedules", "create", "--name", "paused", "--cron", "@daily", "--configuration", one[0],
                   "--inactive")["id"]
    span = ("--from", "2025-01-01T00:00:00Z", "--to", "2025-01-01T00:00:00Z")
    refused = cli("schedules", "backfill", sid, *span, check=2)
    assert "INACTIVE" in refused.stderr and "--even-if-inactive" in refused.stderr, refused.stderr
    assert cli.json("executions", "list", "--schedule", sid) == []
    report = cli.json("schedules", "backfill", sid, *span, "--even-if-inactive")
    assert [s[1] for s in report["started"]] == ["2025-01-01T00:00:00Z"], report


def test_apps_json_is_camel_case_like_every_other_json(walk: tuple[Cli, list[str], list[str]]) -> None:
    cli, _, _ = walk
    subprocess.run(["git", "init", "-q", "--bare", str(cli.tmp / "r.git")], check=True, timeout=60)
    cli("repos", "add", "r", "r.git", check=0)
    cli("apps", "add", "a", "--repo", "r", check=0)
    status = cli.json("apps", "status", "a")
    assert status["syncStatus"] == "NEVER" and "resourceGroup" in status and "lastSyncAt" in status, status
    (listed,) = cli.json("apps", "list")
    assert not [k for k in (*status, *listed) if "_" in k], (status, listed)


def test_bench_runner_names_the_floor_flag_when_the_floor_is_missing(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, str(REPO / "bench" / "bench_runner.py"), "--reps", "1"], cwd=tmp_path,
                       env={"PATH": "/usr/bin:/bin", "BENCH_FLOOR": str(tmp_path / "absent.py")},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert str(tmp_path / "absent.py") in p.stderr and "--floor PATH" in p.stderr, p.stderr


# ---------------------------------------------------------------------- through a server
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("walk2srv")
    (tmp / "wf").mkdir()
    (tmp / "wf" / "one.yaml").write_text(ECHO)
    (tmp / "jobs").mkdir()
    srv = ApiServer(tmp, "--workflows", str(tmp / "wf"), env={"ORCHESTRATOR_FILE_ROOTS": str(tmp / "jobs")})
    srv.env.update({"ORCHESTRATOR_SERVER": srv.base, "ORCHESTRATOR_TOKEN": srv.token})
    try:
        yield srv
    finally:
        srv.stop()


def test_the_openapi_document_opens_without_a_token_and_nothing_else_does(server: ApiServer) -> None:
    assert f"{server.base}/openapi.json" in server.output() and f"{server.base}/docs" not in server.output()
    status, _, spec = server.call("GET", "/openapi.json", token="", rg=None)
    assert status == 200 and "/v2/lm/configurations" in spec["paths"], status
    assert server.call("GET", "/docs", token="", rg=None)[0] == 401  # no CDN-loading Swagger UI page
    for method, path in (("GET", "/v2/lm/scenarios"), ("POST", "/openapi.json"), ("GET", "/v2/lm/meta"),
                         ("GET", "/openapi.json/x"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect")):
        assert server.call(method, path, {} if method == "POST" else None, token="")[0] in (401, 404), (method, path)
    assert server.call("GET", "/v2/lm/scenarios", token="")[0] == 401


def test_configurations_list_and_show_with_server(server: ApiServer) -> None:
    run = json.loads(server.cli("run", "cfg-one", "-q", "--json").stdout)
    assert run["status"] == "COMPLETED", run
    listed = json.loads(server.cli("configurations", "--json").stdout)
    assert [c["id"] for c in listed] == [run["configurationId"]] and set(listed[0]) == CFG_KEYS, listed
    cid = run["configurationId"]
    assert json.loads(server.cli("configurations", "show", cid[:6], "--json").stdout)["id"] == cid
    assert cid in server.cli("configurations", "show", "cfg-one-cli").stdout
    missing = server.cli("configurations", "show", "no-such", check=2)
    assert f"configuration 'no-such' not found on {server.base}" in missing.stderr, missing.stderr
    batch = server.cli("deploy", "--configuration", "cfg-one-cli", check=None)  # a name: found, then refused
    assert batch.returncode != 0 and f"configuration {cid} is for executable 'cfg-one'" in batch.stderr, batch.stderr


def test_an_azure_ml_job_run_with_server_records_its_job_file(server: ApiServer) -> None:
    (server.tmp / "jobs" / "train-job.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        "command: echo hello\nexperiment_name: walk-azure\n")
    ex = json.loads(server.cli("run", "-q", "--json", "jobs/train-job.yml").stdout)
    assert ex["status"] == "COMPLETED" and ex["executableId"] == "azureml-train-job", ex  # as a local run names it
    from orchestrator.control.service import Service

    svc = Service(server.home, "default", reap=False)
    try:
        doc = json.dumps(svc.store.executable_document("default", ex["executableId"]))
    finally:
        svc.close()
    source = re.search(r'orchestrator/azureml-source\\*": \\*"([^"\\]*)', doc)
    assert source and source.group(1) == str(server.tmp / "jobs" / "train-job.yml"), doc[:2000]
    status, _, body = server.call("POST", "/v2/lm/azureml/jobs?jobFile=../x.yml",
                                  {"$schema": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
                                   "command": "echo x"})
    assert status == 400 and "jobFile" in body["error"]["message"], body


def test_a_job_file_name_with_control_characters_is_refused(server: ApiServer) -> None:
    """``jobFile`` is stored as the execution's source and printed to other users: escape sequences,
    line breaks and other unprintable characters never get in; an ordinary name with spaces does."""
    import urllib.parse

    job = {"$schema": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json", "command": "echo x"}
    for name in ("\x1b]0;owned\x07\x1b[2J\nFAKE: COMPLETED\r.yml", "job\n.yml", "job\u202e.yml", "job\t.yaml",
                 "a/b.yml", "..", "job.sh", "x" * 300 + ".yml", ""):
        query = urllib.parse.urlencode({"jobFile": name})
        status, _, body = server.call("POST", f"/v2/lm/azureml/jobs?{query}", job)
        assert status == 400 and "jobFile" in body["error"]["message"], (name, status, body)
        assert "\x1b" not in body["error"]["message"] and "\n" not in body["error"]["message"], body
    status, _, body = server.call("POST", "/v2/lm/azureml/jobs?" + urllib.parse.urlencode({"jobFile": "my job (2).yml"}),
                                  job)
    assert status == 202 and body["kind"] == "execution", body
