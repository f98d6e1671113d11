"""Every problem of a file in one run (issue item 8).

Semantic checks run even when the JSON Schema stage found errors, on a copy without the rejected
parts: a broken item is skipped but its name still resolves, so no follow-on error appears.
Every duplicate key and every disallowed tag of a file is reported, not only the first.
"""

from __future__ import annotations

import pytest

from orchestrator.spec import validate_text

REPORT_TASK_END = "            dependencies: [train]\n"
TRAIN_CONTAINER = "      container:\n        image: python:3.11-slim\n        command: [python3, /app/train.py]\n"


def test_schema_error_does_not_hide_a_semantic_error_elsewhere(spec) -> None:
    text = spec.broken(("entrypoint: main", "entrypoint: mian"),
                       (TRAIN_CONTAINER, "      activeDeadlineSeconds: [1]\n" + TRAIN_CONTAINER))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["ref.template", "schema.type"]
    spec.assert_at(spec.only(res, "ref.template"), spec.pos(text, "mian"), "/spec/entrypoint")
    spec.assert_at(spec.only(res, "schema.type"), spec.pos(text, "[1]"), "/spec/templates/2/activeDeadlineSeconds")


def test_a_broken_template_still_resolves_by_name(spec) -> None:
    # 'train' has a schema error: it is not checked further, but the task calling it, the
    # placeholder naming its outputs and the annotation of its globalName are no follow-on errors.
    text = spec.broken((TRAIN_CONTAINER, "      retryStrategy: {limit: [2]}\n" + TRAIN_CONTAINER),
                       ("dependencies: [train]", "dependencies: [trian]"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["dag.unknown-dependency", "schema.type"]
    spec.assert_at(spec.only(res, "dag.unknown-dependency"), spec.pos(text, "trian"),
                   "/spec/templates/0/dag/tasks/2/dependencies/0")
    assert [e.rule for e in res.errors if e.rule.startswith("internal")] == []


def test_a_broken_task_still_counts_as_a_sibling(spec) -> None:
    # Task 'prepare' lost its template name (schema.required); 'train' depends on it and reads its
    # outputs: only the required field is reported, and the unrelated 'when' syntax error too.
    text = spec.broken(("          - name: prepare\n            template: prepare\n", "          - name: prepare\n"),
                       (REPORT_TASK_END, REPORT_TASK_END + '            when: "{{tasks.train.status}} =="\n'))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["schema.required", "when.syntax"]
    spec.assert_at(spec.only(res, "schema.required"), spec.pos(text, "- name: prepare", shift=2),
                   "/spec/templates/0/dag/tasks/0")


def test_serving_schema_error_and_semantic_error_together(spec) -> None:
    text = spec.edit(spec.VALID_SERVING, ("        default: \"1\"\n", "        default: \"1\"\n        type: int\n"))
    text = text.replace("houseModel", "house-model")
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["schema.const", "serving.artifact-name"]
    spec.assert_at(spec.only(res, "serving.artifact-name"), spec.pos(text, "- name: house-model", shift=2 + 6),
                   "/spec/inputs/artifacts/0/name")


def test_metadata_checks_run_when_the_spec_is_unreadable(spec) -> None:
    text = spec.broken(("    scenarios.ai.sap.com/id: demo-scenario\n", ""),
                       ("  templates:\n", "  templates: 3\n  old_templates:\n"))
    res, _ = spec.validate(text)
    assert "label.scenario-missing" in spec.rules(res) and "schema.type" in spec.rules(res)


@pytest.mark.parametrize("body", [
    "spec: []", "spec: {entrypoint: main, templates: [1, null, {name: 5}, {}]}", "metadata: x\nspec: {}",
    "spec: {entrypoint: m, templates: [{name: m, steps: [[null, {name: a}], 3]}]}",
    "spec: {entrypoint: m, templates: [{name: m, dag: {tasks: {}}}, {name: n, dag: {tasks: [{}, 1]}}]}",
    "spec: {entrypoint: m, templates: [{name: m, container: {env: x, envFrom: [1], command: [a]}}]}",
    ("spec: {entrypoint: m, templates: [{name: m, inputs: {artifacts: [{}], parameters: 1},"
     " container: {command: ['{{inputs.parameters.x}}']}}]}"),
    ("spec: {entrypoint: m, arguments: {parameters: [{value: 1}]},"
     " templates: [{name: m, container: {command: ['{{workflow.parameters.z}}']}}]}"),
], ids=["spec-list", "bad-templates", "bad-metadata", "bad-steps", "bad-dag", "bad-env", "bad-io", "unnamed-param"])
def test_broken_shapes_never_crash_the_semantic_checks(body: str) -> None:
    head = ("apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata:\n  name: shape-test\n"
            "  labels: {scenarios.ai.sap.com/id: s-id, ai.sap.com/version: '1'}\n"
            "  annotations: {scenarios.ai.sap.com/name: s, executables.ai.sap.com/name: e}\n")
    text = head + body + "\n" if not body.startswith("metadata") else \
        "apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\n" + body + "\n"
    res = validate_text(text.encode(), "shape.yaml")
    rules = [e.rule for e in res.errors + res.warnings]
    assert rules and not [r for r in rules if r.startswith("internal")], rules
    assert "placeholder.unknown" not in rules  # names of cut items are unknown, never "undeclared"


def test_every_duplicate_key_and_every_unsafe_tag_is_reported(spec) -> None:
    text = spec.broken(("  name: demo-train\n", "  name: demo-train\n  name: again\n"),
                       ("    ai.sap.com/version: \"1.0.0\"\n",
                        "    ai.sap.com/version: \"1.0.0\"\n    ai.sap.com/version: \"2.0.0\"\n"),
                       ("        image: python:3.11-slim\n        command: [python3]\n",
                        ("        image: !!python/name:os.system\n"
                         "        command: !!python/object/apply:os.system [x]\n")))
    res, _ = spec.validate(text)
    got = [(e.rule, e.line, e.col) for e in res.errors]
    assert got == [
        ("yaml.duplicate-key", *spec.pos(text, "  name: again", shift=2)),
        ("yaml.duplicate-key", *spec.pos(text, '    ai.sap.com/version: "2.0.0"', shift=4)),
        ("yaml.unsafe-tag", *spec.pos(text, "!!python/name")),
        ("yaml.unsafe-tag", *spec.pos(text, "!!python/object")),
    ]
    assert [e.pointer for e in res.errors] == ["/metadata/name", "/metadata/labels/ai.sap.com~1version",
                                               "/spec/templates/3/script/image", "/spec/templates/3/script/command"]
    assert res.workflows == [] and res.warnings == []


def test_a_bad_document_does_not_hide_the_next_one_of_the_file(spec) -> None:
    text = spec.broken(("  name: demo-train\n", "  name: demo-train\n  name: again\n")) + "---\n" + \
        spec.broken(("entrypoint: main", "entrypoint: mian")).replace("demo-train", "demo-two")
    res, _ = spec.validate(text)
    assert sorted(e.rule for e in res.errors) == ["ref.template", "yaml.duplicate-key"]
    assert res.workflows == []
