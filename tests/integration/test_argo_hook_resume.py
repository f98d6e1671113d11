"""Lifecycle hooks of a resumed execution (``executions resume``, Argo's ``argo retry``): a hook
that fired and succeeded for a step that is reused stands as it ran (reused, never fired again,
whatever its expression says now); the hooks of a step that runs again are evaluated again and run
again when they fire. Real runs: real step processes, a real SQLite store in tmp_path; the resumed
execution is planned as ``executions resume`` plans it (``Service.plan_resume``)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.control.service import Service
from tests.conftest import template


def hook(step: str, name: str, status: str) -> str:
    return (f"        {name}: {{expression: steps.{step}.status == \"{status}\", template: mark, "
            f"arguments: {{parameters: [{{name: m, value: {step}-{name}}}]}}}}\n")


def test_resume_keeps_fired_hooks_of_reused_steps_and_fires_those_of_steps_that_run_again(tmp_path: Path) -> None:
    wf = (f"""\
- name: main
  steps:
  - - name: a
      template: ok
      hooks:
{hook("a", "running", "Running")}{hook("a", "done", "Succeeded")}\
  - - name: b
      template: flaky
      hooks:
{hook("b", "running", "Running")}{hook("b", "failed", "Failed")}\
- name: ok
  container: {{image: busybox, command: [sh, -c, "sleep 0.3"]}}
- name: flaky
  script: {{image: busybox, command: [sh], source: "sleep 0.3; echo x >> {tmp_path}/flaky; [ $(wc -l < {tmp_path}/flaky) -ge 2 ]"}}
- name: mark
  inputs: {{parameters: [{{name: m}}]}}
  container: {{image: busybox, command: [sh, -c, "echo {{{{inputs.parameters.m}}}} >> {tmp_path}/marks"]}}
""")
    (tmp_path / "wf.yaml").write_text(template("hook-resume", wf))
    marks = tmp_path / "marks"
    svc = Service(tmp_path / "home")
    try:
        plan = svc.plan(str(tmp_path / "wf.yaml"), [], [])
        ex = svc.create(plan)
        assert svc.execute(ex, plan, jobs=2).value == "DEAD"
        assert sorted(marks.read_text().split()) == ["a-done", "a-running", "b-failed", "b-running"]
        marks.unlink()
        again, plan2, reuse, force = svc.plan_resume(ex.id)
        assert svc.execute(again, plan2, jobs=2, reuse=reuse, force=force).value == "COMPLETED"
        rows = {s.node_id: s for s in svc.store.list_steps(svc.rg, again.id)}
    finally:
        svc.close()
    # b ran again: its Running hook fired again; its Failed hook, true before, is not true now
    assert marks.read_text().split() == ["b-running"]
    assert rows["b.hooks.running"].state.value == "SUCCEEDED" and rows["b.hooks.failed"].state.value == "SKIPPED"
    # a was reused: both its hooks stand as they ran (a reused step never is "Running" again)
    assert {rows[n].state.value for n in ("a", "a.hooks.running", "a.hooks.done")} == {"CACHED"}
    assert ex.id in rows["a.hooks.running"].message
