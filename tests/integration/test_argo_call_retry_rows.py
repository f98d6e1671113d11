"""A retried steps/dag call whose loop gets other items in its next attempt (``withParam`` from an
output that changed): the step rows show only what ran in the latest attempt; earlier attempts'
items stay as attempts (their logs), never as live steps. Real runs: real step processes, a real
SQLite store in tmp_path; read back as ``executions show --json`` prints it."""

from __future__ import annotations

from pathlib import Path

from orchestrator.cli.commands_read import execution_json
from orchestrator.control.service import Service
from tests.conftest import template


def test_items_of_an_earlier_attempt_are_attempts_not_steps(tmp_path: Path) -> None:
    wf = f"""\
- name: main
  steps:
  - - {{name: group, template: group}}
- name: group
  retryStrategy: {{limit: 2}}
  steps:
  - - {{name: gen, template: gen}}
  - - name: each
      template: count
      withParam: "{{{{steps.gen.outputs.result}}}}"
      arguments: {{parameters: [{{name: name, value: "{{{{item}}}}"}}]}}
  - - {{name: flaky, template: flaky}}
- name: count
  inputs: {{parameters: [{{name: name}}]}}
  container: {{image: busybox, command: [sh, -c, "echo {{{{inputs.parameters.name}}}} >> {tmp_path}/items"]}}
- name: gen
  script:
    image: busybox
    command: [sh]
    source: |
      echo x >> {tmp_path}/gen
      if [ "$(wc -l < {tmp_path}/gen)" -eq 1 ]; then echo '["a", "b"]'; else echo '["a"]'; fi
- name: flaky
  script: {{image: busybox, command: [sh], source: "echo x >> {tmp_path}/flaky; [ $(wc -l < {tmp_path}/flaky) -ge 2 ]"}}
"""
    path = tmp_path / "wf.yaml"
    path.write_text(template("call-retry-rows", wf))
    svc = Service(tmp_path / "home")
    try:
        plan = svc.plan(str(path), [], [])
        ex = svc.create(plan)
        assert svc.execute(ex, plan, jobs=2).value == "COMPLETED"
        shown = execution_json(svc, svc.store.get_execution(svc.rg, ex.id))
        rows = {s.node_id: s for s in svc.store.list_steps(svc.rg, ex.id)}
    finally:
        svc.close()
    assert sorted((tmp_path / "items").read_text().split()) == ["a", "a", "b"]
    loop_steps = {s["name"]: s for s in shown["steps"] if s["name"].startswith("group.each(")}
    assert len(loop_steps) == 1, sorted(rows)
    (name, step), = loop_steps.items()
    assert name == "group.each(0:a)" and step["state"] == "SUCCEEDED", name
    assert "group.each(1:b)" not in rows, sorted(rows)
    # the earlier attempt's items are kept as attempts (their logs), numbered apart from the latest's
    attempts = [(a["step"], a["attempt"]) for a in shown["attempts"] if a["step"].startswith("group.each(")]
    assert sorted(attempts) == [("group.each(0:a)", 1), ("group.each(0:a)", 2), ("group.each(1:b)", 1)], attempts
    assert {a["step"]: a["attempt"] for a in shown["attempts"]}["group.flaky"] == 2
