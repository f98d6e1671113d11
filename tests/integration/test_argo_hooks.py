"""Argo lifecycle hooks other than ``exit`` at run time (real runs: real step processes, a real
SQLite store in tmp_path): a hook runs its template once its expression is true, at most once per
step (per item of a loop) or execution, in parallel to its step; what follows the step waits for
its hooks; a hook that ends Failed is ignored, one that ends Error (could not start) fails the
execution; workflow-level hooks see ``workflow.status`` change, and the exit handler runs after them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.control.service import Service
from tests.conftest import template

LEAVES = """\
- name: work
  container: {image: busybox, command: [sh, -c, "sleep 0.2"]}
- name: note
  inputs: {parameters: [{name: out, value: ""}]}
  script:
    image: busybox
    command: [sh]
    source: |
      [ -z "{{inputs.parameters.out}}" ] || sleep 0.3
      [ -z "{{inputs.parameters.out}}" ] || echo seen > "{{inputs.parameters.out}}"
- name: fails
  container: {image: busybox, command: [sh, -c, "exit 3"]}
- name: broken
  container: {image: busybox, command: [/nonexistent-program-of-the-image]}
- name: check-file
  inputs: {parameters: [{name: path}]}
  container: {image: busybox, command: [test, -f, "{{inputs.parameters.path}}"]}
"""


HOOKED_A = "- name: main\n  steps:\n  - - name: a\n      template: work\n      hooks:\n"  # hooks follow


def run(tmp_path: Path, templates: str, spec_extra: str = "", jobs: int = 2,
        params: str = "") -> tuple[str, dict[str, str], list[str]]:
    """(status, {leaf: state}, leaves in the order they started)."""
    path = tmp_path / f"wf{len(list(tmp_path.glob('wf*.yaml')))}.yaml"
    path.write_text(template("hooks-rt", templates + LEAVES, spec_extra=spec_extra, params=params))
    svc = Service(tmp_path / "home")
    try:
        plan = svc.plan(str(path), [], [])
        ex = svc.create(plan)
        status = svc.execute(ex, plan, jobs=jobs).value
        rows = [s for s in svc.store.list_steps(svc.rg, ex.id) if s.kind == "leaf"]
    finally:
        svc.close()
    started = [s.node_id for s in sorted((s for s in rows if s.started_at), key=lambda s: s.started_at)]
    return status, {s.node_id: s.state.value for s in rows}, started


def test_step_hooks_fire_once_on_their_expression(tmp_path: Path) -> None:
    steps = """\
- name: main
  steps:
  - - name: step-1
      template: work
      hooks:
        running: {expression: 'steps["step-1"].status == "Running"', template: note}
        success: {expression: 'steps["step-1"].status == "Succeeded"', template: fails}
        failure: {expression: 'steps["step-1"].status == "Failed"', template: note}
  - - name: step2
      template: work
"""
    status, states, _ = run(tmp_path, steps)
    assert status == "COMPLETED"  # the success hook failed: ignored, as Argo ignores a Failed hook
    assert states == {"step-1": "SUCCEEDED", "step-1.hooks.running": "SUCCEEDED",
                      "step-1.hooks.success": "FAILED", "step-1.hooks.failure": "SKIPPED",
                      "step2": "SUCCEEDED"}


@pytest.mark.parametrize("jobs", [1, 4])
def test_what_follows_a_task_waits_for_its_hooks(tmp_path: Path, jobs: int) -> None:
    out = tmp_path / "hook-was-here"
    dag = f"""\
- name: main
  dag:
    tasks:
    - name: A
      template: inner
      hooks:
        running:
          expression: tasks.A.status == "Running"
          template: note
          arguments: {{parameters: [{{name: out, value: "{out}"}}]}}
    - name: B
      dependencies: [A]
      template: check-file
      arguments: {{parameters: [{{name: path, value: "{out}"}}]}}
    - name: C
      dependencies: [A]
      template: work
      withItems: [1, 2]
      hooks:
        done: {{expression: tasks.C.status == "Succeeded", template: note}}
- name: inner
  steps: [[{{name: x, template: work}}]]
"""
    status, states, _ = run(tmp_path, dag, jobs=jobs)
    assert status == "COMPLETED", states
    assert states["A.hooks.running"] == "SUCCEEDED" and states["B"] == "SUCCEEDED"
    assert states["C(0:1).hooks.done"] == states["C(1:2).hooks.done"] == "SUCCEEDED"  # once per item


def test_a_hook_that_cannot_start_fails_the_execution(tmp_path: Path) -> None:
    steps = HOOKED_A + """\
        ok: {expression: steps.a.status == "Succeeded", template: broken}
  - - name: b
      template: work
"""
    status, states, _ = run(tmp_path, steps)
    assert status == "DEAD"
    assert states["a"] == "SUCCEEDED" and states["a.hooks.ok"] == "FAILED"
    assert states["b"] != "SUCCEEDED"


def test_workflow_hooks_see_the_status_and_precede_the_exit_handler(tmp_path: Path) -> None:
    extra = """\
  hooks:
    exit: {template: note}
    running: {expression: workflow.status == "Running", template: note}
    succeeded: {expression: workflow.status == "Succeeded", template: note}
    failed: {expression: workflow.status == "Failed", template: note}
"""
    status, states, started = run(tmp_path, "- name: main\n  steps: [[{name: s, template: fails}]]\n", extra)
    assert status == "DEAD"
    assert states["hooks.running"] == "SUCCEEDED" and states["hooks.failed"] == "SUCCEEDED"
    assert states["hooks.succeeded"] == "SKIPPED" and states["onExit"] == "SUCCEEDED"
    assert started.index("hooks.failed") < started.index("onExit")


@pytest.mark.parametrize(("go", "state"), [("yes", "SUCCEEDED"), ("no", "SKIPPED")])
def test_placeholders_in_an_expression_are_values(tmp_path: Path, go: str, state: str) -> None:
    steps = HOOKED_A + """\
        quoted: {expression: '"{{workflow.parameters.go}}" == "yes" && steps.a.status == "Succeeded"', template: note}
        bare: {expression: '{{workflow.parameters.n}} > 2 && steps.a.status == "Succeeded"', template: note}
"""
    status, states, _ = run(tmp_path, steps, params=f"- {{name: go, value: {go}}}\n- {{name: n, value: '3'}}\n")
    assert status == "COMPLETED"
    assert states["a.hooks.quoted"] == state and states["a.hooks.bare"] == "SUCCEEDED"
