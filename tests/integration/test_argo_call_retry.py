"""Argo's ``retryStrategy`` on a steps/dag template at run time (real runs: real step processes, a
real SQLite store in tmp_path): a failed call runs again as a whole — every step inside it,
loops compiled again, never from the cache —, within ``limit``, ``retryPolicy`` and ``expression``;
what follows the call waits for its last attempt.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.control.service import Service
from tests.conftest import template


def leaves(tmp_path: Path) -> str:
    return f"""\
- name: count
  inputs: {{parameters: [{{name: name}}]}}
  container: {{image: busybox, command: [sh, -c, "echo x >> {tmp_path}/{{{{inputs.parameters.name}}}}"]}}
- name: gen
  script: {{image: busybox, command: [sh], source: "echo '[1, 2]'"}}
- name: flaky
  inputs: {{parameters: [{{name: ok-at}}]}}
  script:
    image: busybox
    command: [sh]
    source: |
      echo x >> {tmp_path}/flaky
      [ "$(wc -l < {tmp_path}/flaky)" -ge {{{{inputs.parameters.ok-at}}}} ]
"""


def run(tmp_path: Path, templates: str) -> tuple[str, str, dict[str, str]]:
    path = tmp_path / "wf.yaml"
    path.write_text(template("call-retry", templates + leaves(tmp_path)))
    svc = Service(tmp_path / "home")
    try:
        plan = svc.plan(str(path), [], [])
        ex = svc.create(plan)
        status = svc.execute(ex, plan, jobs=2).value
        message = svc.store.get_execution(svc.rg, ex.id).status_message
        states = {s.node_id: s.state.value for s in svc.store.list_steps(svc.rg, ex.id) if s.kind == "leaf"}
    finally:
        svc.close()
    return status, message, states


def lines(tmp_path: Path, name: str) -> int:
    return len((tmp_path / name).read_text().splitlines()) if (tmp_path / name).exists() else 0


STEPS = """\
- name: main
  steps:
  - - name: group
      template: group
  - - name: after
      template: count
      arguments: {{parameters: [{{name: name, value: after}}]}}
- name: group
  retryStrategy: {retry}
  steps:
  - - name: first
      template: count
      arguments: {{parameters: [{{name: name, value: first}}]}}
    - name: gen
      template: gen
  - - name: each
      template: count
      withParam: "{{{{steps.gen.outputs.result}}}}"
      arguments: {{parameters: [{{name: name, value: each}}]}}
  - - name: flaky
      template: flaky
      arguments: {{parameters: [{{name: ok-at, value: "{ok_at}"}}]}}
"""


def test_a_failed_steps_call_runs_again_as_a_whole(tmp_path: Path) -> None:
    status, message, states = run(tmp_path, STEPS.format(retry="{limit: 3}", ok_at=3))
    assert status == "COMPLETED", message
    assert states["group.flaky"] == "SUCCEEDED" and states["after"] == "SUCCEEDED"
    # three attempts of the call: every step inside ran three times (the loop's items too)
    assert (lines(tmp_path, "first"), lines(tmp_path, "each"), lines(tmp_path, "flaky")) == (3, 6, 3)
    assert lines(tmp_path, "after") == 1


def test_the_limit_ends_it(tmp_path: Path) -> None:
    status, message, states = run(tmp_path, STEPS.format(retry="{limit: 1}", ok_at=9))
    assert status == "DEAD"
    assert "ran 2 times" in message
    assert states["after"] == "OMITTED" and lines(tmp_path, "first") == 2 and lines(tmp_path, "after") == 0


@pytest.mark.parametrize(("retry", "runs"), [
    ("{limit: 3, retryPolicy: OnError}", 1),  # a step that exits non-zero is Failed, not Error
    ("{limit: 3, expression: 'lastRetry.status == \"Error\"'}", 1),
    ("{limit: 2, expression: 'lastRetry.status == \"Failed\" && asInt(retries) < 1'}", 2),
])
def test_policy_and_expression_decide_on_a_dag_call(tmp_path: Path, retry: str, runs: int) -> None:
    dag = f"""\
- name: main
  dag:
    tasks:
    - {{name: inner, template: inner}}
- name: inner
  retryStrategy: {retry}
  dag:
    tasks:
    - name: a
      template: flaky
      arguments: {{parameters: [{{name: ok-at, value: "9"}}]}}
"""
    status, _message, _states = run(tmp_path, dag)
    assert status == "DEAD"
    assert lines(tmp_path, "flaky") == runs


def test_the_entrypoint_runs_again_its_hooks_and_exit_handler_once(tmp_path: Path) -> None:
    wf = """\
- name: main
  retryStrategy: {limit: 3, backoff: {duration: "0.2"}}
  steps:
  - - name: first
      template: count
      arguments: {parameters: [{name: name, value: first}]}
  - - name: flaky
      template: flaky
      arguments: {parameters: [{name: ok-at, value: "2"}]}
- name: on-exit
  container: {image: busybox, command: [sh, -c, "echo x >> TMP/exit"]}
- name: on-running
  container: {image: busybox, command: [sh, -c, "echo x >> TMP/running"]}
""".replace("TMP", str(tmp_path))
    path = tmp_path / "wf.yaml"
    path.write_text(template("call-retry", wf + leaves(tmp_path), spec_extra="""\
  hooks:
    exit: {template: on-exit}
    running: {expression: workflow.status == "Running", template: on-running}
"""))
    svc = Service(tmp_path / "home")
    try:
        plan = svc.plan(str(path), [], [])
        status = svc.execute(svc.create(plan), plan, jobs=2).value
    finally:
        svc.close()
    assert status == "COMPLETED"
    assert [lines(tmp_path, n) for n in ("first", "flaky", "running", "exit")] == [2, 2, 1, 1]
