"""What a new user hits in the first hour, through the real CLI (subprocesses, a real store in tmp_path).

Covers: the store found like git finds ``.git`` (reads never create one), ``--artifact`` with plain
paths / ``file://`` anywhere / ``ai://…/dir/``, unique id prefixes, ``executions show`` with the
values an execution ran with, logs of cached steps, ``--status`` and help texts, 80-column tables,
metric goals, exit codes and the ``resume`` hint, and ``secrets``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Cli, template

CAT = """
- name: main
  inputs: {artifacts: [{name: data, path: /tmp/in}]}
  outputs: {artifacts: [{name: copy, globalName: copy, path: /tmp/out}]}
  container:
    image: alpine
    command: [sh, -c, 'mkdir -p "$1" && cp -r "$0" "$1/" && find "$0" -type f | sort && cat $(find "$0" -type f | sort)',
              "{{inputs.artifacts.data.path}}", "{{outputs.artifacts.copy.path}}"]
"""

SAY = """
- name: main
  container:
    image: alpine
    command: [sh, -c, 'echo "said $0"', "{{workflow.parameters.word}}"]
"""

METRICS = """
- name: main
  script:
    image: python:3.11
    command: [python3]
    source: |
      from orchestrator import tracking
      for step, (loss, acc, other) in enumerate([(0.9, 0.5, 3), (0.4, 0.8, 1), (0.6, 0.7, 2)]):
          tracking.log_metrics({"loss": loss, "acc": acc, "other": other}, step=step)
"""


def _ids(out: str) -> set[str]:
    return set(re.findall(r"\b[0-9a-f]{16}\b|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", out))


def _bare(tmp: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI without ORCHESTRATOR_HOME (the store is found from ``cwd``)."""
    clean = {k: v for k, v in os.environ.items() if k != "ORCHESTRATOR_HOME"}
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=False)


# ---------------------------------------------------------------------- 14: where the store is
def test_store_is_found_upward_and_read_commands_never_create_one(tmp_path: Path) -> None:
    if any((p / ".orchestrator").exists() for p in tmp_path.parents):
        pytest.skip("a parent of tmp_path holds a .orchestrator store")
    project, deep, elsewhere = tmp_path / "project", tmp_path / "project" / "src" / "deep", tmp_path / "elsewhere"
    deep.mkdir(parents=True)
    elsewhere.mkdir()
    (project / "say.yaml").write_text(template("say-it", SAY, params="- name: word\n  value: hi"))

    for args in (["executions"], ["logs", "abcd1234"], ["metrics", "abcd1234"], ["artifacts"], ["secrets", "list"],
                 ["executions", "show", "abcd1234"]):
        p = _bare(tmp_path, elsewhere, *args)
        assert p.returncode == 2, (args, p.stderr)
        assert f"store not found: no .orchestrator directory in {elsewhere} or any parent" in p.stderr, p.stderr
        assert "$ORCHESTRATOR_HOME is not set" in p.stderr
    assert list(elsewhere.iterdir()) == []

    assert _bare(tmp_path, project, "init").returncode == 0
    assert (project / ".orchestrator" / "orchestrator.db").is_file()
    run = _bare(tmp_path, deep, "run", "../../say.yaml", "-q", "--json")
    assert run.returncode == 0, run.stderr
    assert not (deep / ".orchestrator").exists()  # the nearest store upward was used
    listed = _bare(tmp_path, deep, "executions", "--json")
    assert [e["id"] for e in json.loads(listed.stdout)] == [json.loads(run.stdout)["id"]]

    # precedence: --home > $ORCHESTRATOR_HOME > found upward
    other = tmp_path / "other-home"
    p = _bare(tmp_path, deep, "executions", ORCHESTRATOR_HOME=str(other))
    assert p.returncode == 2 and f"orchestrator store not found at {other} ($ORCHESTRATOR_HOME)" in p.stderr
    assert not other.exists()
    p = _bare(tmp_path, deep, "--home", str(other / "x"), "executions", ORCHESTRATOR_HOME=str(project / ".orchestrator"))
    assert p.returncode == 2 and f"orchestrator store not found at {other / 'x'} (--home)" in p.stderr
    # a write command with nothing found creates ./.orchestrator where it runs
    assert _bare(tmp_path, elsewhere, "run", str(project / "say.yaml"), "-q").returncode == 0
    assert (elsewhere / ".orchestrator" / "orchestrator.db").is_file()


# ---------------------------------------------------------------------- 15: --artifact values
def test_artifact_takes_plain_paths_and_file_urls_anywhere_and_ai_folders(cli: Cli, tmp_path: Path) -> None:
    f = cli.write("cat.yaml", template("cat-input", CAT))
    outside = tmp_path.parent / f"{tmp_path.name}-outside"  # neither under the cwd nor under the home
    outside.mkdir()
    (outside / "data.txt").write_text("from outside\n")
    (tmp_path / "rel.txt").write_text("relative\n")
    try:
        for value, text in (("rel.txt", "relative"), ("./rel.txt", "relative"), (str(outside / "data.txt"), "from outside"),
                            ((outside / "data.txt").as_uri(), "from outside"), (str(outside), "from outside")):
            ex = cli.run_json(str(f), "--artifact", f"data={value}")
            assert ex["status"] == "COMPLETED", (value, ex["statusMessage"])
            assert text in cli("logs", ex["id"], check=0).stdout, value
            assert ex["inputArtifacts"][0]["url"].startswith("file:///"), ex["inputArtifacts"]
        # an output folder, addressed with a trailing slash, is a folder and not an error
        url = next(a["url"] for a in ex["outputArtifacts"] if a["name"] == "copy")
        again = cli.run_json(str(f), "--artifact", f"data={url}/", "--no-cache")
        assert again["status"] == "COMPLETED", again["statusMessage"]
        assert again["inputArtifacts"][0]["url"] == url
        p = cli("run", str(f), "--artifact", "data=./no-such.csv", check=2)
        assert "no such file or directory: ./no-such.csv" in p.stderr
    finally:
        for child in outside.iterdir():
            child.unlink()
        outside.rmdir()


# ---------------------------------------------------------------------- 16: id prefixes
def _clone_execution(home: Path, source: str, new_id: str) -> None:
    db = sqlite3.connect(home / "orchestrator.db")
    try:
        with db:
            db.execute("CREATE TEMP TABLE e AS SELECT * FROM executions WHERE id=?", (source,))
            db.execute("UPDATE e SET id=?", (new_id,))
            db.execute("INSERT INTO executions SELECT * FROM e")
    finally:
        db.close()


def test_unique_id_prefixes_work_and_ambiguous_ones_list_the_candidates(cli: Cli) -> None:
    f = cli.write("cat.yaml", template("cat-input", CAT))
    cli.write("in.txt", "x\n")
    first = cli.run_json(str(f), "--artifact", "data=in.txt")
    eid, art = first["id"], first["outputArtifacts"][0]["id"]
    assert cli.json("executions", "show", eid[:6])["id"] == eid
    assert "x" in cli("logs", eid[:5], check=0).stdout
    assert cli.json("metrics", eid[:4])["executionId"] == eid
    assert cli.json("artifacts", "show", art[:8])["id"] == art
    assert [a["id"] for a in cli.json("artifacts", "--execution", eid[:7])] == [art]
    second = cli.run_json(str(f), "--artifact", f"data={art[:6]}", "--no-cache")
    assert second["status"] == "COMPLETED" and second["inputArtifacts"][0]["artifactId"] == art
    cfg = second["configurationId"]
    cli("schedules", "create", "--name", "n", "--cron", "@daily", "--configuration", cfg[:8], "--inactive", check=0)

    _clone_execution(cli.home, eid, "abcd000000000001")
    _clone_execution(cli.home, eid, "abcd000000000002")
    for args in (["executions", "show", "abcd"], ["logs", "abcd0"], ["executions", "stop", "abcd"]):
        p = cli(*args, check=2)
        assert "execution id prefix" in p.stderr and "is ambiguous" in p.stderr, p.stderr
        assert "abcd000000000001" in p.stderr and "abcd000000000002" in p.stderr, p.stderr
    assert cli.json("executions", "show", "abcd000000000002")["id"] == "abcd000000000002"
    p = cli("executions", "show", "ffffffff", check=2)
    assert "execution 'ffffffff' not found" in p.stderr
    p = cli("executions", "show", eid[:3], check=2)
    assert "at least 4 characters" in p.stderr


# ---------------------------------------------------------------------- 17: show and logs
def test_show_prints_the_parameters_and_inputs_an_execution_ran_with(cli: Cli) -> None:
    f = cli.write("cat.yaml", template("cat-input", CAT, params="- name: word\n  value: dflt\n- name: n"))
    cli.write("in.txt", "x\n")
    ex = cli.run_json(str(f), "-p", "n=42", "--artifact", "data=in.txt")
    shown = cli.json("executions", "show", ex["id"])
    assert {p["name"]: p["value"] for p in shown["parameters"]} == {"word": "dflt", "n": "42"}
    assert [(a["key"], a["url"]) for a in shown["inputArtifacts"]] == [("data", (cli.tmp / "in.txt").as_uri())]
    text = cli("executions", "show", ex["id"], check=0, env={"COLUMNS": "200"}).stdout
    assert re.search(r"\bn\b.*\b42\b", text) and re.search(r"\bword\b.*\bdflt\b", text), text
    assert (cli.tmp / "in.txt").as_uri() in text


def test_logs_of_a_cached_execution_say_whose_logs_they_are(cli: Cli) -> None:
    f = cli.write("say.yaml", template("say-it", SAY, params="- name: word\n  value: hello"))
    first = cli.run_json(str(f))
    second = cli.run_json(str(f))
    assert [s["state"] for s in second["steps"]] == ["CACHED"]
    p = cli("logs", second["id"], check=0)
    assert "said hello" in p.stdout
    assert f"its log is the one of execution {first['id']}" in p.stderr, p.stderr


# ---------------------------------------------------------------------- 18: options and help
def test_status_filter_takes_any_case_and_rejects_unknown_values(cli: Cli) -> None:
    f = cli.write("say.yaml", template("say-it", SAY, params="- name: word\n  value: hello"))
    ex = cli.run_json(str(f))
    assert [e["id"] for e in cli.json("executions", "--status", "completed")] == [ex["id"]]
    assert cli.json("executions", "list", "--status", "Dead") == []
    p = cli("executions", "--status", "bogus", check=2)
    assert "invalid choice" in p.stderr and "COMPLETED" in p.stderr and "STOPPED" in p.stderr
    helptext = cli("executions", "--help", check=0).stdout
    assert all(s in helptext for s in ("UNKNOWN", "PENDING", "RUNNING", "COMPLETED", "DEAD", "STOPPING", "STOPPED"))


def test_the_hidden_execute_command_never_shows(cli: Cli) -> None:
    assert "_execute" not in cli("--help", check=0).stdout
    for bad in ("bogus", "_exec", "exectuions"):
        p = cli(bad, check=2)
        assert "_execute" not in p.stderr and "invalid choice" in p.stderr, p.stderr
    assert "did you mean 'executions'" in cli("exectuions", check=2).stderr


# ---------------------------------------------------------------------- 19: 80 columns
def test_tables_fit_80_columns_and_never_cut_an_id(cli: Cli) -> None:
    f = cli.write("cat.yaml", template("cat-input-with-a-rather-long-executable-name", CAT))
    cli.write("in.txt", "x\n")
    runs = [cli.run_json(str(f), "--artifact", "data=in.txt", "--no-cache") for _ in range(2)]
    wanted = {r["id"] for r in runs} | {a["id"] for r in runs for a in r["outputArtifacts"]}
    env = {"COLUMNS": "80"}
    seen: set[str] = set()
    for args in (["executions"], ["artifacts"], ["executions", "show", runs[0]["id"]], ["metrics", runs[0]["id"]]):
        out = cli(*args, check=0, env=env).stdout
        assert all(len(line) <= 80 for line in out.splitlines()), (args, out)
        seen |= _ids(out)
    assert wanted <= seen, wanted - seen
    wide = cli("executions", check=0, env={"COLUMNS": "200"}).stdout
    assert "scenario" in wide and "test-scenario" in wide


# ---------------------------------------------------------------------- 20: metric goals
def test_metrics_best_follows_the_declared_goal(cli: Cli) -> None:
    f = cli.write("m.yaml", template("metric-goals", METRICS,
                                     annotations='orchestrator/metrics: "loss:min, acc:max, bad:up"'))
    ex = cli.run_json(str(f))
    out = cli.json("metrics", ex["id"])
    assert out["goals"] == {"loss": "min", "acc": "max"}
    summary = {m["name"]: m for m in out["summary"]}
    assert (summary["loss"]["best"], summary["loss"]["bestStep"]) == (0.4, 1)
    assert (summary["acc"]["best"], summary["acc"]["bestStep"]) == (0.8, 1)
    other = summary["other"]
    assert other["goal"] is None and other["best"] is None
    assert (other["min"], other["minStep"], other["max"], other["maxStep"]) == (1, 1, 3, 0)
    text = cli("metrics", ex["id"], check=0, env={"COLUMNS": "120"}).stdout
    assert "no goal declared for other" in text and "orchestrator/metrics" in text
    assert "ignored in orchestrator/metrics: 'bad:up'" in text
    row = next(line for line in text.splitlines() if line.lstrip("│┃ ").startswith("loss"))
    assert "min" in row and "0.4 @1" in row, row
    shown = cli.json("executions", "show", ex["id"])["metrics"]
    assert {m["name"]: m["bestStep"] for m in shown} == {"loss": 1, "acc": 1, "other": None}


# ---------------------------------------------------------------------- 21: exit codes and hints
def test_yaml_syntax_error_in_run_exits_1_like_validate(cli: Cli) -> None:
    bad = cli.write("bad.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: [WorkflowTemplate\n")
    v = cli("validate", str(bad), check=1)
    r = cli("run", str(bad), check=1)
    assert "yaml" in r.stderr.lower() and "bad.yaml:" in r.stderr and "yaml" in v.stderr.lower()


WHEN = """
- name: main
  steps:
    - - {name: a, template: say, when: "{{workflow.parameters.word}} =~ {{workflow.parameters.pattern}}"}
- name: say
  container: {image: alpine, command: [sh, -c, 'echo ran; exit "$0"', "{{workflow.parameters.code}}"]}
"""


def test_a_failure_from_parameter_values_does_not_suggest_a_resume(cli: Cli) -> None:
    f = cli.write("when.yaml", template("when-param", WHEN, params="- name: word\n  value: abc\n"
                                        "- name: pattern\n  value: '^a'\n- name: code\n  value: '0'"))
    p = cli("run", str(f), "-p", "pattern=(", "-q", check=1)  # not a regular expression
    eid = p.stdout.split()[0]
    assert "  resume:" not in p.stderr and "executions resume" not in p.stderr, p.stderr
    assert "no resume: step 'a' never started" in p.stderr
    assert f"orchestrator run {f} -p NAME=VALUE" in p.stderr and f"executions show {eid}" in p.stderr
    # a step that ran and failed may well pass next time: resume is offered
    p = cli("run", str(f), "-p", "code=3", "-q", check=1)
    assert f"resume: orchestrator executions resume {p.stdout.split()[0]}" in p.stderr


def test_ctrl_c_prints_the_resume_command(cli: Cli) -> None:
    body = """
- name: main
  container: {image: alpine, command: [sh, -c, 'echo started; sleep 60']}
"""
    f = cli.write("nap.yaml", template("nap-long", body))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(f)], cwd=cli.tmp, env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = cli.json("executions") if (cli.home / "orchestrator.db").exists() else []
            if rows and rows[0]["status"] == "RUNNING":
                break
            time.sleep(0.2)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    eid = cli.json("executions")[0]["id"]
    assert proc.returncode == 130, (proc.returncode, err)
    assert f"resume: orchestrator executions resume {eid}" in err, err
    assert "Traceback" not in err


# ---------------------------------------------------------------------- 6: secrets
def test_secrets_come_from_stdin_or_the_environment_and_are_never_listed(cli: Cli) -> None:
    def stdin(*args: str, data: str, rg: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        pre = ["--resource-group", rg] if rg else []
        return subprocess.run([sys.executable, "-m", "orchestrator", *pre, "secrets", *args], cwd=cli.tmp,
                              env={**cli.env, **env}, input=data, capture_output=True, text=True, timeout=60,
                              check=False)

    assert stdin("create", "db", "--key", "password", data="s3cr3t-one\n").returncode == 0
    p = stdin("create", "api", "--key", "user", "--key", "token", data="user=bot\n# comment\ntoken=s3cr3t-two\n")
    assert p.returncode == 0, p.stderr
    p = stdin("create", "env", "--from-env", "MY_TOKEN", data="", MY_TOKEN="s3cr3t-three")
    assert p.returncode == 0, p.stderr
    p = stdin("create", "team", "--key", "k", data="s3cr3t-four", rg="team-b")
    assert p.returncode == 0, p.stderr

    listed = cli.json("secrets", "list")
    assert {r["name"]: r["keys"] for r in listed} == {"api": ["token", "user"], "db": ["password"],
                                                      "env": ["MY_TOKEN"]}
    table = cli("secrets", "list", check=0).stdout + cli("--resource-group", "team-b", "secrets", "list").stdout
    dump = json.dumps(listed) + table
    assert "s3cr3t" not in dump and "team" in table
    db = sqlite3.connect(cli.home / "orchestrator.db")
    try:
        data = {(rg, n): json.loads(d) for rg, n, d in db.execute("SELECT rg, name, data FROM secrets")}
    finally:
        db.close()
    assert data[("default", "db")] == {"password": base64.b64encode(b"s3cr3t-one").decode()}
    assert base64.b64decode(data[("default", "api")]["token"]) == b"s3cr3t-two"
    assert base64.b64decode(data[("team-b", "team")]["k"]) == b"s3cr3t-four"

    p = stdin("create", "db", "--key", "password", data="again")
    assert p.returncode == 2 and "already exists" in p.stderr and "--replace" in p.stderr
    assert stdin("create", "db", "--key", "password", "--replace", data="new").returncode == 0
    p = stdin("create", "x", "--key", "a", "--key", "b", data="a=1\n")
    assert p.returncode == 2 and "lacks b" in p.stderr
    p = stdin("create", "x", "--from-env", "NOT_SET_ANYWHERE", data="")
    assert p.returncode == 2 and "NOT_SET_ANYWHERE is not set" in p.stderr
    p = stdin("create", "x", "--key", "k=v", data="v")  # a value never comes from argv
    assert p.returncode == 2 and "invalid secret key" in p.stderr
    assert "--value" not in cli("secrets", "create", "--help", check=0).stdout
    assert cli("secrets", "delete", "db", check=0).returncode == 0
    assert "db" not in {r["name"] for r in cli.json("secrets", "list")}
    p = cli("secrets", "delete", "db", check=2)
    assert "not found" in p.stderr
    p = cli("--resource-group", "(admin)", "secrets", "list", check=2)
    assert "not a valid resource group" in p.stderr
