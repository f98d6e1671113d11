"""Placeholders in lifecycle-hook and ``retryStrategy`` expressions are values, never expression text
(real runs: real step processes, a real SQLite store in tmp_path): a parameter holding quotes or
backticks cannot make a hook fire or a step retry, a non-ASCII value compares as itself, a quoted
placeholder compares without its quotes; and a hook is re-evaluated only when a node it reads
changes (loop items each with a hook: evaluations grow linearly, not with items squared).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.control.service import Service
from orchestrator.run import lifecycle
from tests.conftest import template

LEAVES = """\
- name: work
  container: {image: busybox, command: [sh, -c, "exit 0"]}
- name: note
  container: {image: busybox, command: [sh, -c, "exit 0"]}
"""
HOOKS = """\
  hooks:
    quoted: {expression: "'env-{{workflow.parameters.env}}' == 'env-prod'", template: note}
    backtick: {expression: "`env-{{workflow.parameters.env}}` == 'env-prod'", template: note}
    bare: {expression: "{{workflow.parameters.env}} == 'prod'", template: note}
    whole: {expression: "'{{workflow.parameters.env}}' == 'prod'", template: note}
"""


def run(tmp_path: Path, templates: str, params: list[str], spec_extra: str = "",
        wf_params: str = "") -> tuple[str, dict[str, str]]:
    path = tmp_path / f"wf{len(list(tmp_path.glob('wf*.yaml')))}.yaml"
    path.write_text(template("hook-values", templates + LEAVES, spec_extra=spec_extra, params=wf_params))
    svc = Service(tmp_path / "home")
    try:
        plan = svc.plan(str(path), params, [])
        ex = svc.create(plan)
        status = svc.execute(ex, plan, jobs=2).value
        rows = [s for s in svc.store.list_steps(svc.rg, ex.id) if s.kind == "leaf"]
    finally:
        svc.close()
    return status, {s.node_id: s.state.value for s in rows}


MAIN = "- name: main\n  steps: [[{name: a, template: work}]]\n"


@pytest.mark.parametrize("env", ["' == '' || true || '", "` == '' || true || `", "x' || true || 'y"])
def test_a_parameter_value_cannot_make_a_hook_fire(tmp_path: Path, env: str) -> None:
    status, states = run(tmp_path, MAIN, [f"env={env}"], HOOKS, "- {name: env, value: dev}")
    assert status == "COMPLETED", states
    hooks = {k: v for k, v in states.items() if ".hooks." in k or k.startswith("hooks.")}
    assert len(hooks) == 4 and set(hooks.values()) == {"SKIPPED"}, hooks


def test_hook_values_compare_as_themselves(tmp_path: Path) -> None:
    status, states = run(tmp_path, MAIN, ["env=prod"], HOOKS, "- {name: env, value: dev}")
    hooks = {k: v for k, v in states.items() if "hooks." in k}
    assert status == "COMPLETED" and len(hooks) == 4 and set(hooks.values()) == {"SUCCEEDED"}, hooks
    cafe = "  hooks:\n    cafe: {expression: \"'{{workflow.parameters.env}}' == 'café'\", template: note}\n"
    status, states = run(tmp_path, MAIN, ["env=café"], cafe, "- {name: env, value: dev}")
    assert status == "COMPLETED" and [v for k, v in states.items() if "hooks." in k] == ["SUCCEEDED"], states


RETRY = """\
- name: main
  steps:
  - - name: a
      template: flaky
      arguments: {parameters: [{name: mode, value: "{{workflow.parameters.mode}}"}, {name: out, value: "%s"}]}
- name: flaky
  inputs: {parameters: [{name: mode}, {name: out}]}
  retryStrategy:
    limit: 2
    expression: "'m-{{inputs.parameters.mode}}' == 'm-retry' && '{{inputs.parameters.mode}}' == 'retry'"
  script:
    image: busybox
    command: [sh]
    source: |
      echo attempt >> "{{inputs.parameters.out}}"
      exit 1
"""


@pytest.mark.parametrize(("mode", "attempts"), [("retry", 3), ("' == '' || true || '", 1), ("no", 1)])
def test_retry_expression_binds_values(tmp_path: Path, mode: str, attempts: int) -> None:
    out = tmp_path / "attempts.txt"
    status, states = run(tmp_path, RETRY % out, [f"mode={mode}"], wf_params="- {name: mode, value: no}")
    assert status == "DEAD", states
    assert out.read_text().count("attempt") == attempts


def test_loop_hooks_are_evaluated_only_when_what_they_read_changes(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fires = lifecycle._fires
    monkeypatch.setattr(lifecycle, "_fires", lambda r, node: calls.append(node.id) or fires(r, node))
    n = 24
    loop = f"""\
- name: main
  steps:
  - - name: a
      template: work
      withSequence: {{count: "{n}"}}
      hooks:
        done: {{expression: "steps.a.status == 'Succeeded' || '{{{{item}}}}' == 'x'", template: note}}
"""
    status, states = run(tmp_path, loop, [])
    assert status == "COMPLETED", states
    assert sum(1 for k in states if k.endswith(".hooks.done")) == n
    assert len(calls) <= 6 * n, len(calls)  # before: every record evaluated every armed hook (~n*n)
