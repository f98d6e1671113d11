"""Validation of the Argo features a local run implements: accepted when they run with Argo's
semantics, refused (located) or warned where a local run could differ."""

from __future__ import annotations

import pytest

from orchestrator.spec import validate_text
from tests.conftest import template

LEAF = """\
- name: leaf
  inputs:
    parameters: [{name: x, default: "1"}]
  container:
    image: busybox
    command: [echo, "{{inputs.parameters.x}}"]
"""


def check(templates: str, params: str = "") -> tuple[list[str], list[str]]:
    res = validate_text(template("argo-v", templates + LEAF, params=params).encode(), "v.yaml")
    return [e.rule for e in res.errors], [w.rule for w in res.warnings]


@pytest.mark.parametrize("call", [
    'withParam: "{{steps.gen.outputs.result}}"',
    'withSequence: {count: "3", format: "%02d"}',
    'withSequence: {start: "{{steps.gen.outputs.result}}", end: "1"}',
    "continueOn: {failed: true, error: true}",
    "onExit: leaf",
    'hooks: {exit: {template: leaf, arguments: {parameters: [{name: x, value: "{{steps.use.status}}"}]}}}',
    'when: "{{=asInt(steps.gen.outputs.result) > 2}}"',
])
def test_accepted_call_features(call: str) -> None:
    wf = ("- name: main\n  steps:\n  - - name: gen\n      template: leaf\n  - - name: use\n      template: leaf\n"
          '      arguments:\n        parameters: [{name: x, value: "{{item}}"}]\n' if "with" in call else
          "- name: main\n  steps:\n  - - name: gen\n      template: leaf\n  - - name: use\n      template: leaf\n")
    errors, _ = check(wf + f"      {call}\n")
    assert errors == []


@pytest.mark.parametrize("wf,rule", [
    ("- name: main\n  timeout: soon\n  container: {image: b, command: [\"true\"]}\n", "template.duration"),
    ("- name: main\n  retryStrategy: {limit: many}\n  container: {image: b, command: [\"true\"]}\n", "retry.limit"),
    ("- name: main\n  retryStrategy: {limit: 2, expression: \"lastRetry.exitCode > \"}\n"
     "  container: {image: b, command: [\"true\"]}\n", "retry.expression"),
    ("- name: main\n  container: {image: b, command: [echo, \"{{=exec('x')}}\"]}\n", "placeholder.expression"),
    ("- name: main\n  container: {image: b, command: [echo, \"{{=steps.nope.outputs.result}}\"]}\n",
     "placeholder.expression"),
    ("- name: main\n  container: {image: b, command: [echo, \"{{retries}}\"]}\n", "placeholder.unknown"),
    ("- name: main\n  steps:\n  - - name: a\n      template: leaf\n      withParam: \"1, 2\"\n", "loop.param"),
    ("- name: main\n  steps:\n  - - name: a\n      template: leaf\n      withItems: [1]\n"
     "      withSequence: {count: \"1\"}\n", "loop.several"),
    ("- name: main\n  steps:\n  - - name: a\n      template: leaf\n      onExit: nowhere\n", "ref.template"),
    ("- name: main\n  steps:\n  - - name: a\n      template: leaf\n  outputs:\n    parameters:\n"
     "    - {name: o, valueFrom: {path: /tmp/o}}\n", "param.no-source"),
])
def test_refused_with_a_located_reason(wf: str, rule: str) -> None:
    errors, _ = check(wf)
    assert errors == [rule]


def test_placeholder_durations_and_retry_limits_are_left_for_run_time() -> None:
    wf = ("- name: main\n  inputs:\n    parameters: [{name: t, default: 5s}]\n"
          "  timeout: \"{{inputs.parameters.t}}\"\n  activeDeadlineSeconds: \"{{inputs.parameters.t}}\"\n"
          "  retryStrategy: {limit: \"{{inputs.parameters.t}}\", backoff: {duration: 1s, cap: 5s}}\n"
          "  container: {image: busybox, command: [\"true\"]}\n")
    assert check(wf) == ([], [])


def test_warnings_where_a_local_run_may_differ() -> None:
    wf = ("- name: main\n  steps:\n  - - name: a\n      template: other\n      arguments:\n"
          "        parameters: [{name: undeclared, value: v}]\n"
          "- name: other\n  retryStrategy: {}\n  container: {image: \"alpine:{{workflow.parameters.tag}}\", "
          "command: [\"true\"]}\n")
    errors, warnings = check(wf, params="- {name: tag, value: '3'}")
    assert errors == []
    assert sorted(warnings) == ["arg.unknown-parameter", "image.varies", "image.varies", "retry.unlimited"]


def test_recursion_and_outputs_of_steps_templates_are_accepted() -> None:
    wf = """\
- name: main
  steps:
  - - name: flip
      template: leaf
  - - name: again
      template: main
      when: "{{steps.flip.outputs.result}} == tails"
  outputs:
    parameters:
    - name: last
      valueFrom:
        expression: "steps.again.status == 'Skipped' ? steps.flip.outputs.result : steps.again.outputs.parameters.last"
    - name: first
      valueFrom: {parameter: "{{steps.flip.outputs.result}}"}
"""
    errors, warnings = check(wf)
    assert errors == []
    assert "template.recursion" in warnings


def test_suspend_template_defaults_and_security_context() -> None:
    wf = ("- name: main\n  steps:\n  - - {name: wait, template: wait}\n  - - {name: run, template: leaf}\n"
          "- name: wait\n  suspend: {duration: \"2\"}\n"
          "- name: forever\n  suspend: {}\n  outputs: {parameters: [{name: ok, valueFrom: {supplied: {}}}]}\n"
          "- name: guarded\n  securityContext: {runAsUser: 0}\n  container: {image: busybox, command: [\"true\"]}\n"
          "  outputs: {parameters: [{name: ok, valueFrom: {supplied: {}}}]}\n")
    errors, warnings = check(wf)
    assert errors == ["param.no-source"]  # supplied is for suspend templates (waiting for a resume)
    assert warnings == ["security.context"]
    text = template("argo-defaults", "- name: main\n  container: {image: b, command: [\"true\"]}\n",
                    spec_extra="  templateDefaults:\n    timeout: 30s\n    retryStrategy: {limit: \"2\"}\n")
    res = validate_text(text.encode(), "d.yaml")
    assert res.ok
    t = res.workflows[0].templates["main"]
    assert (t.timeout, t.retry.limit if t.retry else None) == (30.0, 2)


@pytest.mark.parametrize("wf,rule", [
    ("- name: main\n  containerSet:\n    containers:\n    - {name: a, image: b, command: [\"true\"]}\n",
     "containerset.main"),
    ("- name: main\n  containerSet:\n    containers:\n    - {name: main, image: b, command: [\"true\"], "
     "dependencies: [nope]}\n", "containerset.dependency"),
    ("- name: main\n  container: {image: b, command: [\"true\"], volumeMounts: [{name: nope, mountPath: /x}]}\n",
     "volume.unknown"),
    ("- name: main\n  synchronization: {mutex: {name: \"{{inputs.parameters.nope}}\"}}\n  steps:\n"
     "  - - {name: a, template: leaf}\n", "placeholder.unknown"),
    ("- name: main\n  container: {image: b, command: [\"true\"]}\n  sidecars:\n"
     "  - {name: s, image: b, command: [sleep, \"9\"], envFrom: [{secretRef: {name: x}}]}\n", "sidecar.unsupported"),
    ("- name: main\n  steps:\n  - - name: a\n      template: leaf\n      inline: {container: {image: b, command: [\"true\"]}}\n",
     "call.template-and-inline"),
])
def test_refused_argo_shapes_this_runner_cannot_run_faithfully(wf: str, rule: str) -> None:
    errors, _ = check(wf)
    assert errors == [rule]


def test_accepted_runner_features() -> None:
    wf = """\
- name: main
  synchronization: {mutexes: [{name: one}]}
  steps:
  - - name: set
      template: set
  - - name: in
      inline:
        container: {image: busybox, command: [echo, inline]}
- name: set
  volumes: [{name: ws, emptyDir: {}}]
  containerSet:
    volumeMounts: [{name: ws, mountPath: /ws}]
    containers:
    - {name: prep, image: busybox, command: [sh, -c, "echo 1 > /ws/x"]}
    - {name: main, image: busybox, command: [cat, /ws/x], dependencies: [prep]}
  sidecars:
  - {name: helper, image: busybox, command: [sleep, "5"]}
"""
    errors, _ = check(wf)
    assert errors == []  # a mutex on a steps template is held while the call runs
