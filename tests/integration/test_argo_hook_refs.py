"""Argo lifecycle hooks naming their template by ``templateRef`` (a step's hook, a workflow-level
hook, ``hooks.exit``), and ``spec.hooks.exit.arguments`` passed to the exit template as Argo's
``GetExitHook`` does (its own arguments; without any, the workflow's). Real runs: real step
processes, a real SQLite store in tmp_path."""

from __future__ import annotations

from pathlib import Path

from orchestrator.control.service import Service
from orchestrator.spec import validate_paths
from tests.conftest import template

LIB = template("hook-lib", """\
- name: mark
  inputs: {parameters: [{name: out}, {name: text, value: lib}]}
  container: {image: busybox, command: [sh, -c, 'echo "{{inputs.parameters.text}}" >> "{{inputs.parameters.out}}"']}
""").replace("spec:\n  entrypoint: main\n", "spec:\n")


def run(tmp_path: Path, templates: str, spec_extra: str = "", params: str = "") -> tuple[str, dict[str, str]]:
    (tmp_path / "lib.yaml").write_text(LIB)
    path = tmp_path / "wf.yaml"
    path.write_text(template("hook-refs", templates, spec_extra=spec_extra, params=params))
    svc = Service(tmp_path / "home")
    try:
        plan = svc.plan(str(path), [], [])
        ex = svc.create(plan)
        status = svc.execute(ex, plan, jobs=2).value
        rows = {s.node_id: s.state.value for s in svc.store.list_steps(svc.rg, ex.id) if s.kind == "leaf"}
    finally:
        svc.close()
    return status, rows


def test_hooks_by_template_ref_run_the_referenced_template(tmp_path: Path) -> None:
    out = tmp_path / "marks"
    steps = f"""\
- name: main
  steps:
  - - name: a
      template: work
      hooks:
        done:
          expression: steps.a.status == "Succeeded"
          templateRef: {{name: hook-lib, template: mark}}
          arguments: {{parameters: [{{name: out, value: "{out}"}}, {{name: text, value: step}}]}}
- name: work
  container: {{image: busybox, command: ["true"]}}
"""
    hooks = f"""\
  hooks:
    exit:
      templateRef: {{name: hook-lib, template: mark}}
      arguments: {{parameters: [{{name: out, value: "{out}"}}, {{name: text, value: "exit {{{{workflow.status}}}}"}}]}}
    running:
      expression: workflow.status == "Running"
      templateRef: {{name: hook-lib, template: mark}}
      arguments: {{parameters: [{{name: out, value: "{out}"}}, {{name: text, value: wf}}]}}
"""
    status, rows = run(tmp_path, steps, spec_extra=hooks)
    assert status == "COMPLETED", rows
    marks = out.read_text().split("\n")
    assert sorted(marks[:-2]) == ["step", "wf"] and marks[-2:] == ["exit Succeeded", ""], marks
    res = validate_paths([str(tmp_path / "wf.yaml")])
    assert not res.errors and any(w.rule == "templateref.unconfirmed" for w in res.warnings)


def test_workflow_exit_hook_arguments(tmp_path: Path) -> None:
    out = tmp_path / "exit"
    steps = """\
- name: main
  container: {image: busybox, command: [sh, -c, "exit 1"]}
- name: report
  inputs: {parameters: [{name: out}, {name: text, value: default}]}
  container: {image: busybox, command: [sh, -c, 'echo "{{inputs.parameters.text}}" > "{{inputs.parameters.out}}"']}
"""
    hooks = f"""\
  hooks:
    exit:
      template: report
      arguments: {{parameters: [{{name: out, value: "{out}"}}, {{name: text, value: "{{{{workflow.status}}}} {{{{workflow.parameters.who}}}}"}}]}}
"""
    status, rows = run(tmp_path, steps, spec_extra=hooks, params="- {name: who, value: me}")
    assert status == "DEAD" and rows["onExit"] == "SUCCEEDED", (status, rows)
    assert out.read_text() == "Failed me\n"
