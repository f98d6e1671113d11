"""Regression tests for defects found in review (each one failed before its fix)."""

from __future__ import annotations

import json

import pytest

from orchestrator.run import sandbox
from tests.conftest import Cli, template

YES = """
- name: ok
  container: {image: a, command: ["true"]}
- name: bad
  container: {image: a, command: ["false"]}
"""


def states(ex: dict) -> dict[str, str]:
    return {s["name"]: s["state"] for s in ex["steps"]}


def test_from_must_be_an_artifact_reference(cli: Cli, tmp_path) -> None:
    body = """
- name: main
  steps:
    - - name: read
        template: cat
        arguments: {artifacts: [{name: data, from: "/etc/passwd"}]}
- name: cat
  inputs: {artifacts: [{name: data, path: /tmp/in.txt}]}
  container: {image: a, command: [cat, "{{inputs.artifacts.data.path}}"]}
"""
    f = cli.write("from.yaml", template("from-literal", body))
    p = cli("validate", str(f), check=1)
    assert "arg.artifact-source" in p.stderr
    p = cli("run", str(f), check=1)  # a validation error exits 1 on run as on validate
    assert "root:" not in p.stdout + p.stderr


def test_failure_handling_is_by_parsed_task_names(cli: Cli) -> None:
    body = """
- name: main
  dag:
    tasks:
      - {name: a, template: bad}
      - {name: ba, template: ok}
      - {name: c, template: ok, depends: "a.Succeeded || ba.Failed"}
""" + YES
    f = cli.write("sub.yaml", template("substring-depends", body))
    p = cli("run", str(f), "-q", check=1)
    assert "DEAD" in p.stdout


def test_depends_failed_on_a_composite_call_handles_its_failure(cli: Cli) -> None:
    body = """
- name: main
  dag:
    tasks:
      - {name: train, template: inner}
      - {name: cleanup, template: ok, depends: "train.Failed"}
- name: inner
  steps: [[{name: boom, template: bad}]]
""" + YES
    f = cli.write("comp.yaml", template("composite-failed", body))
    ex = cli.run_json(str(f))
    assert ex["status"] == "COMPLETED" and states(ex)["cleanup"] == "SUCCEEDED"


def test_outputs_result_drives_when(cli: Cli) -> None:
    body = """
- name: main
  steps:
    - - {name: flip, template: flip}
    - - {name: heads, template: ok, when: "{{steps.flip.outputs.result}} == heads"}
      - {name: tails, template: ok, when: "{{steps.flip.outputs.result}} == tails"}
- name: flip
  script: {image: python, command: [python3], source: "print('heads')"}
""" + YES
    f = cli.write("coin.yaml", template("coin-flip", body))
    assert states(cli.run_json(str(f))) == {"flip": "SUCCEEDED", "heads": "SUCCEEDED", "tails": "SKIPPED"}


@pytest.mark.skipif(not sandbox.available()[0], reason="no user namespaces here")
def test_working_dir_is_honoured_in_the_sandbox(cli: Cli) -> None:
    body = """
- name: main
  outputs: {artifacts: [{name: m, path: /app/model/, globalName: model}]}
  container:
    image: x
    workingDir: /app/model
    command: [python3, -c, "import os; print(os.getcwd()); open('out.txt', 'w').write('hi')"]
"""
    f = cli.write("wd.yaml", template("workdir-demo", body))
    ex = cli.run_json(str(f))
    assert ex["status"] == "COMPLETED" and ex["outputArtifacts"][0]["name"] == "model"
    assert "/app/model" in cli("logs", ex["id"]).stdout


CHAIN = """
- name: main
  steps:
    - - {name: a, template: write}
    - - name: b
        template: echo
        arguments: {parameters: [{name: v, value: "{{steps.a.outputs.parameters.v}}"}]}
- name: write
  outputs: {parameters: [{name: v, valueFrom: {path: /tmp/v.txt}}]}
  container: {image: x, command: [python3, -c, "import sys; open(sys.argv[1], 'w').write('VERSION')",
              "{{outputs.parameters.v.path}}"]}
- name: echo
  inputs: {parameters: [{name: v}]}
  container: {image: x, command: [python3, -c, "import sys, pathlib; assert not pathlib.Path(sys.argv[2]).exists(); print('got', sys.argv[1])",
              "{{inputs.parameters.v}}", "FLAG"]}
"""


def test_rerun_from_runs_the_step_even_with_the_cache_on(cli: Cli) -> None:
    f = cli.write("c.yaml", template("chain-rerun", CHAIN.replace("FLAG", "/nonexistent")))
    first = cli.run_json(str(f))
    again = cli.run_json(str(f))
    assert set(states(again).values()) == {"CACHED"}
    rerun = cli.json("executions", "rerun", first["id"], "--from", "a", "-q")
    assert states(rerun) == {"a": "SUCCEEDED", "b": "SUCCEEDED"}


def test_resume_does_not_reuse_a_step_whose_definition_changed(cli: Cli, tmp_path) -> None:
    flag = tmp_path / "flag"
    flag.write_text("x")
    f = cli.write("c.yaml", template("chain-resume", CHAIN.replace("FLAG", str(flag))))
    first = cli.run_json(str(f), check=1)
    assert first["status"] == "DEAD"
    cli.write("c.yaml", template("chain-resume", CHAIN.replace("FLAG", str(flag)).replace("'VERSION'", "'V2'")))
    cli("register", str(f), check=0)
    flag.unlink()
    ex = cli.json("executions", "resume", first["id"], "-q")
    assert ex["status"] == "COMPLETED" and states(ex)["a"] == "SUCCEEDED"
    assert "got V2" in cli("logs", ex["id"], "--step", "b").stdout


def test_retry_does_not_store_a_failed_attempts_metrics_twice(cli: Cli, tmp_path) -> None:
    body = f"""
- name: main
  retryStrategy: {{limit: 1}}
  script:
    image: x
    command: [python3]
    source: |
      import os
      from orchestrator import tracking
      marker = "{tmp_path}/attempted"
      first = not os.path.exists(marker)
      open(marker, "a").close()
      tracking.log_metric("loss", 1.0 if first else 2.0)
      raise SystemExit(3 if first else 0)
"""
    f = cli.write("r.yaml", template("retry-metrics", body))
    ex = cli.run_json(str(f))
    values = [m["value"] for m in cli.json("metrics", ex["id"])["metrics"]]
    assert values == [1.0, 2.0]


def test_output_parameter_default_and_a_secret_resolved_at_run_time(cli: Cli) -> None:
    body = """
- name: main
  outputs: {parameters: [{name: p, valueFrom: {path: /tmp/maybe.txt, default: fallback}}]}
  container: {image: x, command: ["true"]}
"""
    f = cli.write("d.yaml", template("out-default", body))
    ex = cli.run_json(str(f))
    assert ex["status"] == "COMPLETED"
    secret = """
- name: main
  container:
    image: x
    command: ["true"]
    env: [{name: API_KEY, valueFrom: {secretKeyRef: {name: team-creds, key: api-token}}}]
"""
    g = cli.write("s.yaml", template("secret-env", secret))
    assert cli("validate", str(g)).returncode == 0  # AI Core accepts it: secrets resolve at run time
    p = cli("run", str(g), "-q", "--json", check=1)
    ex = json.loads(p.stdout)
    assert ex["status"] == "DEAD" and "team-creds" in ex["statusMessage"] and "api-token" in ex["statusMessage"]


def test_deadline_on_a_steps_template_is_a_validation_error(cli: Cli) -> None:
    body = """
- name: main
  timeout: 1s
  steps: [[{name: a, template: ok}]]
""" + YES
    f = cli.write("t.yaml", template("composite-timeout", body))
    p = cli("validate", str(f), check=1)
    assert "template.leaf-only" in p.stderr and "timeout" in p.stderr  # Argo refuses it too


def test_stop_of_unknown_execution_is_404_style_error(cli: Cli) -> None:
    p = cli("executions", "stop", "deadbeefdeadbeef", check=2)
    assert "not found" in p.stderr
