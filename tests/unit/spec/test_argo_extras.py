"""Validation of memoize, dag target, daemon, initContainers placeholders, mutex names and database mutexes."""

from __future__ import annotations

import pytest

from orchestrator.spec import validate_text
from tests.conftest import template

OK = "- name: ok\n  container: {image: b, command: [\"true\"]}\n"


def rules(templates: str, spec_extra: str = "") -> tuple[list[str], list[str]]:
    res = validate_text(template("argo-extras", templates + OK, spec_extra=spec_extra).encode(), "x.yaml")
    return sorted(e.rule for e in res.errors), sorted(e.rule for e in res.warnings)


@pytest.mark.parametrize(("wf", "errors", "warnings"), [
    ("- name: main\n  memoize: {key: \"{{inputs.parameters.k}}\", maxAge: 10s, cache: {configMap: {name: c}}}\n"
     "  inputs: {parameters: [{name: k, value: a}]}\n  container: {image: b, command: [\"true\"]}\n",
     [], ["memoize.unconfirmed"]),
    ("- name: main\n  memoize: {key: \"{{inputs.parameters.nope}}\", maxAge: soon, cache: {configMap: {name: c}}}\n"
     "  container: {image: b, command: [\"true\"]}\n", ["placeholder.unknown", "template.duration"],
     ["memoize.unconfirmed"]),
    ("- name: main\n  memoize: {key: \"{{inputs.parameters.k}}\", cache: {configMap: {name: c}}}\n"
     "  inputs: {parameters: [{name: k, value: a}]}\n  steps: [[{name: a, template: ok}]]\n",
     [], ["memoize.unconfirmed"]),
    ("- name: main\n  dag:\n    target: \"a zz\"\n    tasks: [{name: a, template: ok}]\n", ["dag.target"], []),
    ("- name: main\n  dag:\n    target: \"{{workflow.parameters.nope}}\"\n    tasks: [{name: a, template: ok}]\n",
     ["placeholder.unknown"], []),
    ("- name: main\n  daemon: true\n  container: {image: b, command: [\"true\"], readinessProbe: "
     "{httpGet: {host: example.com, port: 80}}}\n", [], ["daemon.probe-host"]),
    ("- name: main\n  daemon: true\n  steps: [[{name: a, template: ok}]]\n", ["daemon.kind"], []),
    ("- name: main\n  initContainers: [{name: i, image: b, command: [echo, \"{{inputs.parameters.x}}\"]}]\n"
     "  container: {image: b, command: [\"true\"]}\n", ["placeholder.unknown"], []),
    ("- name: main\n  inputs: {parameters: [{name: x, value: a}]}\n  synchronization: {mutex: {name: \"m-{{inputs.parameters.x}}\"}}\n"
     "  steps: [[{name: a, template: ok}]]\n", [], []),
    ("- name: main\n  synchronization: {mutexes: [{name: m, database: true}]}\n  steps: [[{name: a, template: ok}]]\n",
     ["aicore.unsupported"], []),
], ids=["memoize", "memoize-bad", "memoize-steps", "target", "target-placeholder", "daemon", "daemon-steps", "init", "mutex-steps",
        "mutex-database"])
def test_rules(wf: str, errors: list[str], warnings: list[str]) -> None:
    got_errors, got_warnings = rules(wf)
    assert got_errors == errors
    assert [w for w in got_warnings if w != "image.varies"] == warnings


def test_workflow_argument_artifacts_give_the_entrypoint_raw_inputs() -> None:
    wf = ("- name: main\n  inputs: {artifacts: [{name: text, path: /in/text.txt}]}\n"
          "  container: {image: b, command: [cat, /in/text.txt]}\n")
    extra = "  arguments:\n    artifacts:\n    - {name: text, raw: {data: \"1\\n2\\n\"}}\n    - {name: other, raw: {data: x}}\n"
    res = validate_text(template("argo-args", wf, spec_extra=extra).encode(), "a.yaml")
    assert res.errors == [] and [w.rule for w in res.warnings] == ["arg.unknown-artifact"]
    (wf_spec,) = res.workflows
    assert wf_spec.templates["main"].input_artifacts[0].raw == "1\n2\n"
    assert wf_spec.input_artifacts == ()  # fed by the argument: not an input a configuration binds
    bad = extra.replace("raw: {data: x}", "path: /x")
    res = validate_text(template("argo-args", wf, spec_extra=bad).encode(), "a.yaml")
    assert [e.rule for e in res.errors] == ["arg.artifact-source"]
