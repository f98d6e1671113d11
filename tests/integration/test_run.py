"""End-to-end runs through the real CLI: real subprocesses, a real SQLite file in tmp_path."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import Cli, template

ECHO = """
- name: main
  dag:
    tasks:
      - name: a
        template: say
        arguments: {parameters: [{name: msg, value: "{{workflow.parameters.greeting}}"}]}
      - name: b
        template: say
        dependencies: [a]
        arguments: {parameters: [{name: msg, value: "{{tasks.a.outputs.parameters.out}}!"}]}
- name: say
  inputs: {parameters: [{name: msg}]}
  outputs: {parameters: [{name: out, valueFrom: {path: /tmp/out.txt}}]}
  script:
    image: python:3.11
    command: [python3]
    env:
      - {name: MSG, value: "{{inputs.parameters.msg}}"}
      - {name: OUT, value: "{{outputs.parameters.out.path}}"}
    source: |
      import os
      print("said:", os.environ["MSG"])
      open(os.environ["OUT"], "w").write(os.environ["MSG"].upper())
"""


def counts(home: Path) -> tuple[int, int, int]:
    db = sqlite3.connect(home / "orchestrator.db")
    try:
        return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[return-value]
                     for t in ("executions", "configurations", "artifacts"))
    finally:
        db.close()


def test_parameters_flow_between_tasks(cli: Cli) -> None:
    f = cli.write("echo.yaml", template("echo-flow", ECHO, params="- name: greeting\n  value: hello"))
    out = cli.run_json(str(f), "-p", "greeting=hi there")
    assert out["status"] == "COMPLETED"
    steps = {s["name"]: s for s in out["steps"]}
    assert set(steps) == {"a", "b"}
    logs = cli("logs", out["id"], "--step", "b", check=0).stdout
    assert "said: HI THERE!" in logs
    # single-pass substitution: a value containing a placeholder is inserted verbatim
    out = cli.run_json(str(f), "-p", "greeting={{workflow.name}} $(id) ; rm -rf /")
    assert out["status"] == "COMPLETED"
    assert "said: {{workflow.name}} $(id) ; rm -rf /" in cli("logs", out["id"], "--step", "a").stdout


def test_binding_errors_exit_2_and_write_nothing(cli: Cli) -> None:
    f = cli.write("echo.yaml", template("echo-flow", ECHO, params="- name: greeting"))
    cli("run", str(f), "-p", "greeting=x", "-q", check=0)
    before = counts(cli.home)
    p = cli("run", str(f), check=2)
    assert "parameter 'greeting' has no default" in p.stderr and "-p greeting=VALUE" in p.stderr
    p = cli("run", str(f), "-p", "Greeting=x", check=2)
    assert "unknown parameter 'Greeting'" in p.stderr and "did you mean 'greeting'" in p.stderr
    p = cli("run", "no-such-executable", check=2)
    assert "unknown executable 'no-such-executable'" in p.stderr
    p = cli("run", str(f), "-p", "greeting=x", "--artifact", "data=ai://default/x", check=2)
    assert "unknown input artifact 'data'" in p.stderr
    assert counts(cli.home) == before


def test_run_by_executable_id_and_config(cli: Cli) -> None:
    f = cli.write("echo.yaml", template("echo-flow", ECHO, params="- name: greeting"))
    cli("register", str(f), check=0)
    out = cli.run_json("echo-flow", "-p", "greeting=by-id")
    assert out["status"] == "COMPLETED"
    cfg = cli.write("cfg.yaml", "apiVersion: orchestrator/v1\nkind: Configuration\nmetadata: {name: nightly}\n"
                    "spec:\n  executableId: echo-flow\n  parameterBindings:\n    - {key: greeting, value: cfg}\n")
    out = cli.run_json("--config", str(cfg))
    assert out["status"] == "COMPLETED" and out["configurationName"] == "nightly"
    assert "said: cfg" in cli("logs", out["id"], "--step", "a").stdout


FAIL = """
- name: main
  steps:
    - - name: ok
        template: sh
        arguments: {parameters: [{name: code, value: "0"}]}
    - - name: boom
        template: sh
        arguments: {parameters: [{name: code, value: "3"}]}
    - - name: never
        template: sh
        arguments: {parameters: [{name: code, value: "0"}]}
- name: sh
  inputs: {parameters: [{name: code}]}
  container:
    image: alpine
    command: [python3, -c, "import sys; [print('line', i) for i in range(20)]; sys.exit(int(sys.argv[1]))"]
    args: ["{{inputs.parameters.code}}"]
"""


def test_dead_execution_names_step_exit_code_and_log_tail(cli: Cli) -> None:
    f = cli.write("fail.yaml", template("fail-demo", FAIL))
    p = cli("run", str(f), check=1)
    assert "DEAD" in p.stdout
    ex = cli.json("executions", "show", p.stdout.split()[0])
    assert ex["status"] == "DEAD"
    msg = ex["statusMessage"]
    assert "'boom'" in msg and "exit code 3" in msg and "line 19" in msg
    states = {s["name"]: s["state"] for s in ex["steps"]}
    assert states == {"ok": "SUCCEEDED", "boom": "FAILED", "never": "OMITTED"}


PARALLEL = """
- name: main
  dag:
    tasks:
      - {name: left, template: nap}
      - {name: right, template: nap}
      - {name: join, template: nap, dependencies: [left, right]}
- name: nap
  container: {image: alpine, command: [sleep, "0.6"]}
"""


def _intervals(ex: dict) -> dict[str, tuple[float, float]]:
    return {s["name"]: (s["startedAt"], s["finishedAt"]) for s in ex["steps"]}


def test_independent_steps_overlap_with_j2(cli: Cli) -> None:
    f = cli.write("par.yaml", template("par-demo", PARALLEL))
    iv = _intervals(cli.run_json(str(f), "-j", "2"))
    (l0, l1), (r0, r1), (j0, _) = iv["left"], iv["right"], iv["join"]
    assert max(l0, r0) < min(l1, r1), "left and right did not run at the same time"
    assert j0 >= max(l1, r1)
    iv = _intervals(cli.run_json(str(f), "-j", "1", "--no-cache"))
    (l0, l1), (r0, r1) = iv["left"], iv["right"]
    assert l1 <= r0 or r1 <= l0, "-j 1 must run one step at a time"


def test_template_parallelism_limits_a_fan(cli: Cli) -> None:
    body = """
- name: main
  parallelism: 1
  steps:
    - - {name: fan, template: nap, withItems: [1, 2, 3]}
- name: nap
  container: {image: alpine, command: [sleep, "0.2"]}
"""
    f = cli.write("fan.yaml", template("fan-demo", body))
    iv = sorted(_intervals(cli.run_json(str(f), "-j", "4")).values())
    assert len(iv) == 3
    assert all(a[1] <= b[0] for a, b in zip(iv, iv[1:])), iv


def test_when_and_with_items(cli: Cli) -> None:
    body = """
- name: main
  steps:
    - - name: each
        template: say
        withItems: [red, {k: v}, 3]
        arguments: {parameters: [{name: msg, value: "item={{item}}"}]}
      - name: maybe
        template: say
        when: "{{workflow.parameters.flag}} == yes"
        arguments: {parameters: [{name: msg, value: "ran"}]}
- name: say
  inputs: {parameters: [{name: msg}]}
  container: {image: alpine, command: [echo, "{{inputs.parameters.msg}}"]}
"""
    f = cli.write("items.yaml", template("items-demo", body, params="- name: flag\n  value: no"))
    ex = cli.run_json(str(f))
    states = {s["name"]: s["state"] for s in ex["steps"]}
    assert states["maybe"] == "SKIPPED"
    assert sorted(n for n in states if n.startswith("each(")) == ["each(0:red)", "each(1:{'k': 'v'})", "each(2:3)"]
    logs = cli("logs", ex["id"]).stdout
    assert 'item={"k": "v"}' in logs and "item=red" in logs
    ex = cli.run_json(str(f), "-p", "flag=yes")
    assert {s["name"]: s["state"] for s in ex["steps"]}["maybe"] == "SUCCEEDED"


def test_workflow_deadline_kills_and_says_which(cli: Cli) -> None:
    body = """
- name: main
  container: {image: alpine, command: [sleep, "30"]}
"""
    f = cli.write("slow.yaml", template("slow-demo", body, spec_extra="  activeDeadlineSeconds: 1\n"))
    p = cli("run", str(f), check=1, timeout=30)
    ex = cli.json("executions", "show", p.stdout.split()[0])
    assert ex["status"] == "DEAD" and "activeDeadlineSeconds" in ex["statusMessage"]
    t = ex["steps"][0]
    assert t["finishedAt"] - t["startedAt"] < 10


def test_log_cap_truncates_with_notice(cli: Cli) -> None:
    body = """
- name: main
  container: {image: alpine, command: [python3, -c, "import sys; sys.stdout.write('x' * 300000)"]}
"""
    f = cli.write("loud.yaml", template("loud-demo", body))
    ex = cli.run_json(str(f), env={"ORCHESTRATOR_LOG_CAP": "1000"})
    assert ex["status"] == "COMPLETED"
    log = Path(ex["steps"][0]["log"]).read_text()
    assert log.startswith("x" * 1000) and "log truncated: 299000 bytes dropped" in log
    assert len(log) < 1200


def test_command_not_found_is_a_clear_failure(cli: Cli) -> None:
    body = """
- name: main
  container: {image: alpine, command: [definitely-not-a-command-xyz]}
"""
    f = cli.write("nf.yaml", template("nf-demo", body))
    p = cli("run", str(f), check=1)
    ex = cli.json("executions", "show", p.stdout.split()[0])
    assert "exit code 127" in ex["statusMessage"] or "definitely-not-a-command-xyz" in ex["statusMessage"]


def test_listing_and_filters(cli: Cli) -> None:
    f = cli.write("fail.yaml", template("fail-demo", FAIL))
    g = cli.write("par.yaml", template("par-demo", PARALLEL))
    cli("run", str(f), "-q", check=1)
    cli("run", str(g), "-q", check=0)
    assert [e["executableId"] for e in cli.json("executions", "--status", "DEAD")] == ["fail-demo"]
    assert len(cli.json("executions", "--scenario", "test-scenario")) == 2
    assert cli.json("executions", "--scenario", "nope") == []
    assert "fail-demo" in cli("executions", check=0).stdout
