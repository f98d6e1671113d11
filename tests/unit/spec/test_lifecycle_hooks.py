"""Validation of Argo lifecycle hooks other than ``exit`` (``hooks.NAME: {expression, template}``) on
the workflow and on steps/tasks: accepted with Argo's names, every mistake a located error."""

from __future__ import annotations

import pytest

from orchestrator.spec import validate_text
from tests.conftest import template

LEAVES = ("- name: work\n  container: {image: b, command: [\"true\"]}\n"
          "- name: note\n  inputs: {parameters: [{name: msg, value: x}]}\n"
          "  container: {image: b, command: [echo, \"{{inputs.parameters.msg}}\"]}\n")


def check(templates: str, spec_extra: str = "") -> list[tuple[str, str]]:
    res = validate_text(template("hooks", templates + LEAVES, spec_extra=spec_extra).encode(), "x.yaml")
    return sorted((e.rule, e.pointer) for e in res.errors)


STEPS = ("- name: main\n  steps:\n  - - name: step-1\n      template: work\n      hooks:\n{hooks}"
         "  - - name: step2\n      template: work\n")
DAG = "- name: main\n  dag:\n    tasks:\n    - name: a\n      template: work\n      hooks:\n{hooks}"


@pytest.mark.parametrize(("templates", "spec_extra", "want"), [
    (STEPS.format(hooks="        running: {expression: 'steps[\"step-1\"].status == \"Running\"', template: note}\n"
                        "        success:\n          expression: steps[\"step-1\"].status == \"Succeeded\"\n"
                        "          template: note\n          arguments: {parameters: [{name: msg, value: "
                        "\"{{steps.step-1.status}}\"}]}\n"), "", []),
    (DAG.format(hooks="        failed: {expression: tasks.a.status == \"Failed\" || workflow.status == \"Failed\", "
                      "template: note}\n"), "", []),
    ("- name: main\n  steps: [[{name: s, template: work}]]\n",
     "  hooks:\n    exit: {template: note}\n    running: {expression: workflow.status == \"Running\", template: note}\n",
     []),
    (DAG.format(hooks="        x: {template: note}\n"), "", [("hook.expression", "/spec/templates/0/dag/tasks/0/hooks/x")]),
    (DAG.format(hooks="        x: {expression: 'tasks.a.status ==', template: note}\n"), "",
     [("hook.expression", "/spec/templates/0/dag/tasks/0/hooks/x/expression")]),
    (DAG.format(hooks="        x: {expression: tasks.zz.status == \"Running\", template: note}\n"), "",
     [("hook.expression", "/spec/templates/0/dag/tasks/0/hooks/x/expression")]),
    (DAG.format(hooks="        x: {expression: tasks.a.status == \"Running\", template: nope}\n"), "",
     [("ref.template", "/spec/templates/0/dag/tasks/0/hooks/x/template")]),
    (DAG.format(hooks="        x: {expression: 'tasks.a.status == \"Running\"', template: note, arguments: "
                      "{parameters: [{name: msg, value: \"{{inputs.parameters.nope}}\"}]}}\n"), "",
     [("placeholder.unknown", "/spec/templates/0/dag/tasks/0/hooks/x/arguments/parameters/0/value")]),
    ("- name: main\n  steps: [[{name: s, template: work}]]\n",
     "  hooks:\n    running: {expression: steps.s.status == \"Running\", template: note}\n",
     [("hook.expression", "/spec/hooks/running/expression")]),
], ids=["steps", "dag", "workflow", "no-expression", "syntax", "unknown-task", "unknown-template", "argument",
        "workflow-scope"])
def test_lifecycle_hooks_validate(templates: str, spec_extra: str, want: list[tuple[str, str]]) -> None:
    assert check(templates, spec_extra) == want
