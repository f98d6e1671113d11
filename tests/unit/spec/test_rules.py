"""One test per validation rule: a valid template broken in one place, checked for the exact rule
code, ``line:col`` (computed from the text written, not taken from the loader) and JSON pointer.

The ``spec`` fixture (conftest.py) owns the valid templates and the helpers.
"""

from __future__ import annotations

import pytest

from orchestrator.spec import validate_paths

# Edits reused by several tests (old, new); each ``old`` occurs exactly once in VALID.
NO_SCENARIO = ("    scenarios.ai.sap.com/id: demo-scenario\n", "")
BAD_ENTRYPOINT = ("entrypoint: main", "entrypoint: mian")
ADD_REPORT_DEPS = ("dependencies: [train]", "dependencies: [train, trian]")
REPORT_TASK_END = "            dependencies: [train]\n"


def test_valid_template_has_no_errors_and_builds_one_workflow(spec) -> None:
    res, path = spec.validate(spec.VALID)
    assert res.errors == [] and res.warnings == [], spec.rules(res)
    assert res.ok and res.files == [path]
    assert len(res.workflows) == 1
    wf = res.workflows[0]
    assert (wf.executable_id, wf.kind, wf.scenario_id, wf.version, wf.entrypoint) == (
        "demo-train", "WorkflowTemplate", "demo-scenario", "1.0.0", "main")
    assert (wf.scenario_name, wf.executable_name) == ("Demo scenario", "Demo training")
    assert set(wf.templates) == {"main", "prepare", "train", "report"}
    assert [p.name for p in wf.parameters] == ["alpha"] and wf.parameters[0].default == "0.5"
    # 'data' of train is fed by from:, so only 'dataset' is an executable input artifact.
    assert [a.name for a in wf.input_artifacts] == ["dataset"]
    assert [a.global_name for a in wf.output_artifacts] == ["model"]
    assert wf.artifact_meta["dataset"].kind == "dataset" and wf.artifact_meta["model"].kind == "model"
    assert wf.source == path


def test_valid_serving_template_has_no_errors(spec) -> None:
    res, _ = spec.validate(spec.VALID_SERVING)
    assert res.errors == [] and res.warnings == [], spec.rules(res)
    assert [w.kind for w in res.workflows] == ["ServingTemplate"]


def test_unquoted_numbers_keep_their_source_text(spec) -> None:
    text = spec.broken(('ai.sap.com/version: "1.0.0"', "ai.sap.com/version: 1.10"),
                       ('value: "0.5"', "value: 0.2"))
    res, _ = spec.validate(text)
    assert res.ok, spec.rules(res)
    (wf,) = res.workflows
    assert wf.version == "1.10"
    assert wf.parameters[0].default == "0.2"


# ------------------------------------------------------------------ metadata (reference §1.3)


def test_label_scenario_missing(spec) -> None:
    text = spec.broken(NO_SCENARIO)
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["label.scenario-missing"]
    err = spec.only(res, "label.scenario-missing")
    # the labels mapping, which now starts with the version label
    spec.assert_at(err, spec.pos(text, "    ai.sap.com/version", shift=4), "/metadata/labels")
    assert "scenarios.ai.sap.com/id" in err.message and err.severity == "error"
    assert not res.ok and res.workflows == []


def test_label_version_missing(spec) -> None:
    text = spec.broken(('    ai.sap.com/version: "1.0.0"\n', ""))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["label.version-missing"]
    err = spec.only(res, "label.version-missing")
    spec.assert_at(err, spec.pos(text, "    scenarios.ai.sap.com/id", shift=4), "/metadata/labels")
    assert "ai.sap.com/version" in err.message


def test_annotation_name_missing(spec) -> None:
    text = spec.broken(("    executables.ai.sap.com/name: Demo training\n", ""))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["annotation.name-missing"]
    err = spec.only(res, "annotation.name-missing")
    spec.assert_at(err, spec.pos(text, "    scenarios.ai.sap.com/name", shift=4), "/metadata/annotations")
    assert "executables.ai.sap.com/name" in err.message


@pytest.mark.parametrize(("name", "why"), [
    ("ab", "4 to 64 characters"),
    ("a" * 65, "4 to 64 characters"),
    ("demo$train", "only letters, digits, '_', '.' and '-'"),
], ids=["too-short", "too-long", "dollar"])
def test_id_pattern_is_the_ai_api_pattern(spec, name: str, why: str) -> None:
    # AI Core checks executable ids against ^[\w.-]{4,64}$ (AI API spec): outside it is an error.
    text = spec.named(name)
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["id.pattern"]
    err = spec.only(res, "id.pattern")
    spec.assert_at(err, spec.pos(text, f"name: {name}\n", shift=6), "/metadata/name")
    assert why in err.message and repr(name) in err.message
    assert err.severity == "error" and res.workflows == []


@pytest.mark.parametrize(("name", "hint"), [
    ("Demo_Train", "use 'demo-train'"),
    ("demo.train", "use 'demo-train'"),
    ("-demo-train", "use 'demo-train'"),
    ("a" * 64, "label values hold 63"),
], ids=["uppercase-underscore", "dot", "leading-hyphen", "64-characters"])
def test_id_not_a_kubernetes_name_is_a_warning(spec, name: str, hint: str) -> None:
    # Inside the AI API pattern, SAP's naming rule (lowercase, '-' only) is advice: a warning.
    text = spec.named(name)
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["id.k8s-name"]
    err = spec.only(res, "id.k8s-name")
    spec.assert_at(err, spec.pos(text, f"name: {name}\n", shift=6), "/metadata/name")
    assert err.severity == "warning" and hint in err.hint
    assert res.ok and [w.executable_id for w in res.workflows] == [name]


def test_id_duplicate_across_files(spec) -> None:
    first = spec.write("a.yaml", spec.VALID)
    second_text = spec.VALID
    second = spec.write("b.yaml", second_text)
    res = validate_paths([first, second])
    assert spec.rules(res) == ["id.duplicate"]
    err = spec.only(res, "id.duplicate")
    assert err.file == second
    spec.assert_at(err, spec.pos(second_text, "name: demo-train", shift=6), "/metadata/name")
    first_line = spec.pos(spec.VALID, "name: demo-train")[0]
    assert f"{first}:{first_line}" in err.message and "'demo-train'" in err.message
    # the first definition still builds, the duplicate does not
    assert [w.source for w in res.workflows] == [first]


def test_label_executable_id_mismatch_is_a_warning(spec) -> None:
    # AI Core's executable id is metadata.name; a differing label is tolerated (SAP samples ship it).
    text = spec.broken(("executables.ai.sap.com/id: demo-train", "executables.ai.sap.com/id: demo-training"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["label.executable-id-mismatch"]
    err = spec.only(res, "label.executable-id-mismatch")
    spec.assert_at(err, spec.pos(text, "demo-training"), "/metadata/labels/executables.ai.sap.com~1id")
    assert "'demo-training'" in err.message and "'demo-train'" in err.message
    assert err.severity == "warning" and res.ok
    assert [w.executable_id for w in res.workflows] == ["demo-train"]


# ------------------------------------------------------------------ templates and references


@pytest.mark.parametrize(("edit", "bad", "pointer", "hint"), [
    (BAD_ENTRYPOINT, "mian", "/spec/entrypoint", "did you mean 'main'?"),
    (("            template: report\n", "            template: reprot\n"), "reprot",
     "/spec/templates/0/dag/tasks/2/template", "did you mean 'report'?"),
], ids=["entrypoint", "dag-task"])
def test_ref_template(spec, edit: tuple[str, str], bad: str, pointer: str, hint: str) -> None:
    text = spec.broken(edit)
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["ref.template"]
    err = spec.only(res, "ref.template")
    spec.assert_at(err, spec.pos(text, bad), pointer)
    assert f"template {bad!r} does not exist" in err.message
    assert err.hint == hint


def test_template_duplicate_name(spec) -> None:
    extra = "    - name: report\n      script:\n        image: busybox\n        source: echo again\n"
    text = spec.VALID + extra
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["template.duplicate-name"]
    err = spec.only(res, "template.duplicate-name")
    spec.assert_at(err, spec.pos(text, extra, shift=extra.index("report")), "/spec/templates/4/name")
    assert "'report'" in err.message


@pytest.mark.parametrize(("edit", "has"), [
    (('      script:\n        image: python:3.11-slim\n        command: [python3]\n'
      '        source: |\n          print("done")\n', ""), "none"),
    (("      script:\n", '      container:\n        image: busybox\n        command: ["true"]\n      script:\n'),
     "container, script"),
], ids=["none", "container-and-script"])
def test_template_kind(spec, edit: tuple[str, str], has: str) -> None:
    text = spec.broken(edit)
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["template.kind"]
    err = spec.only(res, "template.kind")
    # the template item: its first key, 'name'
    spec.assert_at(err, spec.pos(text, "\n    - name: report", shift=7), "/spec/templates/3")
    assert f"(has {has})" in err.message


# ------------------------------------------------------------------ DAG


def test_dag_cycle(spec) -> None:
    text = spec.broken(("            template: prepare\n",
                        "            template: prepare\n            dependencies: [report]\n"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["dag.cycle"]
    err = spec.only(res, "dag.cycle")
    spec.assert_at(err, spec.pos(text, "- name: prepare", shift=2), "/spec/templates/0/dag/tasks/0")
    assert "prepare -> train -> report -> prepare" in err.message


def test_dag_unknown_dependency(spec) -> None:
    text = spec.broken(("dependencies: [train]", "dependencies: [trian]"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["dag.unknown-dependency"]
    err = spec.only(res, "dag.unknown-dependency")
    spec.assert_at(err, spec.pos(text, "trian"), "/spec/templates/0/dag/tasks/2/dependencies/0")
    assert "'trian'" in err.message and err.hint == "did you mean 'train'?"


@pytest.mark.parametrize(("depends", "message", "hint"), [
    ("train.Succeded", "unknown task result 'Succeded'", "did you mean 'Succeeded'?"),
    ("train &&", "invalid depends expression", ""),
], ids=["unknown-result", "bad-expression"])
def test_dag_depends_syntax(spec, depends: str, message: str, hint: str) -> None:
    text = spec.broken(("dependencies: [train]", f'depends: "{depends}"'))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["dag.depends-syntax"]
    err = spec.only(res, "dag.depends-syntax")
    spec.assert_at(err, spec.pos(text, f'"{depends}"'), "/spec/templates/0/dag/tasks/2/depends")
    assert message in err.message and err.hint == hint


# ------------------------------------------------------------------ placeholders

PREPARE_ARG = "/spec/templates/0/dag/tasks/0/arguments/parameters/0/value"


@pytest.mark.parametrize(("old", "new", "pointer", "message"), [
    ("{{workflow.parameters.alpha}}", "{{workflow.parameters.alpah}}", PREPARE_ARG,
     "workflow parameter 'alpah' is not declared"),
    ('value: "{{inputs.parameters.alpha}}"', 'value: "{{inputs.parameters.beta}}"',
     "/spec/templates/1/container/env/0/value", "'beta' is not declared on this template"),
    ("{{workflow.parameters.alpha}}", "{{tasks.train.status}}", PREPARE_ARG,
     "'train' is not upstream of 'prepare'"),
    ("{{workflow.parameters.alpha}}", "{{item}}", PREPARE_ARG, "only defined with withItems"),
    ("{{tasks.prepare.outputs.parameters.rows}}", "{{tasks.prepare.outputs.parameters.row}}",
     "/spec/templates/0/dag/tasks/1/arguments/parameters/0/value",
     "template 'prepare' declares no output parameter 'row'"),
], ids=["workflow-parameter", "inputs-parameter", "task-not-upstream", "item-without-withItems",
        "unknown-task-output"])
def test_placeholder_unknown(spec, old: str, new: str, pointer: str, message: str) -> None:
    text = spec.broken((old, new))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["placeholder.unknown"]
    err = spec.only(res, "placeholder.unknown")
    quoted = '"' + new.split('"')[1] + '"' if '"' in new else f'"{new}"'
    spec.assert_at(err, spec.pos(text, quoted), pointer)
    assert message in err.message
    if "workflow.parameters.alpah" in new:
        assert err.hint == "did you mean 'alpha'?"


# ------------------------------------------------------------------ artifacts


def test_artifact_kind(spec) -> None:
    text = spec.broken(("artifacts.ai.sap.com/dataset.kind: dataset", "artifacts.ai.sap.com/dataset.kind: datset"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["artifact.kind"]
    err = spec.only(res, "artifact.kind")
    spec.assert_at(err, spec.pos(text, "datset"), "/metadata/annotations/artifacts.ai.sap.com~1dataset.kind")
    assert "'datset'" in err.message and "model|dataset|resultset|other" in err.message
    assert err.hint == "did you mean 'dataset'?"


def test_artifact_annotation_unknown_real_world_energy_dataset(spec) -> None:
    # SAP-samples btp-industry-use-cases energy-forecast-train.yaml (reference §2 #10): the input
    # artifact is 'energy-dataset' but the annotation is keyed 'dataset' and carries that name as kind.
    # AI Core syncs the file and ignores the annotation: one warning, naming the bad kind as well.
    text = spec.broken(
        ("artifacts.ai.sap.com/dataset.kind: dataset", 'artifacts.ai.sap.com/dataset.kind: "energy-dataset"'),
        ("          - name: dataset\n", "          - name: energy-dataset\n"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["artifact.annotation-unknown"]
    pointer = "/metadata/annotations/artifacts.ai.sap.com~1dataset.kind"
    unknown = spec.only(res, "artifact.annotation-unknown")
    spec.assert_at(unknown, spec.pos(text, "artifacts.ai.sap.com/dataset.kind"), pointer)  # the key
    assert "'dataset'" in unknown.message and unknown.hint == "did you mean 'energy-dataset'?"
    assert "'energy-dataset'" in unknown.message  # the invalid kind, in the same warning
    assert unknown.severity == "warning" and res.ok and len(res.workflows) == 1


def test_artifact_no_path(spec) -> None:
    text = spec.broken(("            path: /app/data\n      outputs:", "      outputs:"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["artifact.no-path"]
    err = spec.only(res, "artifact.no-path")
    spec.assert_at(err, spec.pos(text, "- name: data\n      outputs:", shift=2), "/spec/templates/2/inputs/artifacts/0")
    assert "'data'" in err.message


def test_serving_artifact_name(spec) -> None:
    assert spec.VALID_SERVING.count("houseModel") == 3
    text = spec.VALID_SERVING.replace("houseModel", "house-model")  # renamed consistently
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["serving.artifact-name"]
    err = spec.only(res, "serving.artifact-name")
    spec.assert_at(err, spec.pos(text, "- name: house-model", shift=8), "/spec/inputs/artifacts/0/name")
    assert "'house-model'" in err.message


# ------------------------------------------------------------------ parameters and arguments


def test_param_missing_name(spec) -> None:
    text = spec.broken(('      - name: alpha\n        value: "0.5"', '      - value: "0.5"'))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["param.missing-name"]
    err = spec.only(res, "param.missing-name")
    spec.assert_at(err, spec.pos(text, '- value: "0.5"', shift=2), "/spec/arguments/parameters/0")
    assert "'name'" in err.message


def test_arg_unknown_parameter(spec) -> None:
    text = spec.broken((REPORT_TASK_END, REPORT_TASK_END + "            arguments:\n              parameters:\n"
                        "                - name: verbose\n                  value: \"1\"\n"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["arg.unknown-parameter"]
    err = spec.only(res, "arg.unknown-parameter")
    spec.assert_at(err, spec.pos(text, "verbose"), "/spec/templates/0/dag/tasks/2/arguments/parameters/0/name")
    assert "template 'report' has no input parameter 'verbose'" in err.message


def test_arg_missing_parameter(spec) -> None:
    text = spec.broken(("              parameters:\n                - name: rows\n"
                        "                  value: \"{{tasks.prepare.outputs.parameters.rows}}\"\n", ""))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["arg.missing-parameter"]
    err = spec.only(res, "arg.missing-parameter")
    spec.assert_at(err, spec.pos(text, "          - name: train", shift=12), "/spec/templates/0/dag/tasks/1")
    assert "input parameter 'rows' of template 'train' gets no value" in err.message


def test_param_enum_uses_source_text_of_unquoted_value(spec) -> None:
    text = spec.broken(('        value: "0.5"\n', '        value: 1.10\n        enum: ["1.10", "2.0"]\n'))
    res, _ = spec.validate(text)
    assert spec.rules(res) == []
    assert res.workflows[0].parameters[0].default == "1.10"


# ------------------------------------------------------------------ unsupported Argo fields


@pytest.mark.parametrize(("edit", "key", "pointer", "hint"), [
    (("  entrypoint: main\n", "  entrypoint: main\n  shutdown: Stop\n"),
     "shutdown", "/spec/shutdown", "supported here: "),
    (("    - name: report\n      script:", "    - name: report\n      pendingTimeout: 5m\n      script:"),
     "pendingTimeout", "/spec/templates/3/pendingTimeout", "supported here: "),  # podSpecPatch: test_aicore_refusals
    (("  entrypoint: main\n", "  entrypoint: main\n  paralelism: 2\n"),
     "paralelism", "/spec/paralelism", "did you mean 'parallelism'?"),
], ids=["shutdown", "pendingTimeout", "typo"])
def test_argo_unsupported_field(spec, edit: tuple[str, str], key: str, pointer: str, hint: str) -> None:
    text = spec.broken(edit)
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["argo.unsupported-field"]
    err = spec.only(res, "argo.unsupported-field")
    spec.assert_at(err, spec.pos(text, key + ":"), pointer)  # the key itself
    assert f"unsupported field {key!r}" in err.message
    assert err.hint.startswith(hint)
    if hint == "supported here: ":
        supported = "templates" if pointer.count("/") == 2 else "retryStrategy"
        assert supported in err.hint


# ------------------------------------------------------------------ when, containers, security


def test_when_syntax(spec) -> None:
    text = spec.broken((REPORT_TASK_END, REPORT_TASK_END + '            when: "{{tasks.train.status}} =="\n'))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["when.syntax"]
    err = spec.only(res, "when.syntax")
    spec.assert_at(err, spec.pos(text, '"{{tasks.train.status}} =="'), "/spec/templates/0/dag/tasks/2/when")
    assert "invalid when expression" in err.message


def test_container_no_command(spec) -> None:
    text = spec.broken(("        command: [python3, /app/train.py]\n", ""))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["container.no-command"]
    err = spec.only(res, "container.no-command")
    needle = "      container:\n        image: python:3.11-slim\n        env:"
    spec.assert_at(err, spec.pos(text, needle, shift=needle.index("image")), "/spec/templates/2/container")


def test_security_shell_splice_is_a_warning(spec) -> None:
    arg = '"echo {{inputs.parameters.alpha}}"'
    text = spec.broken(("command: [python3, -c]", "command: [sh, -c]"), ('args: ["print(1)"]', f"args: [{arg}]"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["security.shell-splice"]
    err = spec.only(res, "security.shell-splice")
    assert err.severity == "warning" and res.errors == [] and err in res.warnings
    assert res.ok and len(res.workflows) == 1
    spec.assert_at(err, spec.pos(text, arg), "/spec/templates/1/container/args/0")


# ------------------------------------------------------------------ every error at once


def test_every_error_of_several_files_in_one_call(spec) -> None:
    t1 = spec.broken(NO_SCENARIO, BAD_ENTRYPOINT)
    t2 = spec.edit(spec.named("demo-two"),
                   ("  entrypoint: main\n", "  entrypoint: main\n  shutdown: Stop\n"),
                   ADD_REPORT_DEPS,
                   ("artifacts.ai.sap.com/model.kind: model", "artifacts.ai.sap.com/model.kind: weights"))
    t3 = spec.edit(spec.VALID_SERVING.replace("houseModel", "house-model"),
                   ("    executables.ai.sap.com/name: Demo serving\n", ""))
    files = [spec.write(n, t) for n, t in (("one.yaml", t1), ("two.yaml", t2), ("three.yaml", t3))]
    res = validate_paths(files)
    got = {(e.file, e.rule, e.line, e.col) for e in res.errors}
    want = {
        (files[0], "label.scenario-missing", *spec.pos(t1, "    ai.sap.com/version", shift=4)),
        (files[0], "ref.template", *spec.pos(t1, "mian")),
        (files[1], "argo.unsupported-field", *spec.pos(t2, "shutdown")),
        (files[1], "dag.unknown-dependency", *spec.pos(t2, "trian")),
        (files[1], "artifact.kind", *spec.pos(t2, "weights")),
        (files[2], "serving.artifact-name", *spec.pos(t3, "- name: house-model", shift=8)),
        (files[2], "annotation.name-missing", *spec.pos(t3, "    scenarios.ai.sap.com/name", shift=4)),
    }
    assert got == want
    assert res.workflows == [] and res.files == files


def test_cycle_does_not_hide_other_errors_of_the_dag(spec) -> None:
    text = spec.broken(("            template: prepare\n",
                        "            template: prepare\n            dependencies: [report]\n"),
                       ("            template: report\n", "            template: reprot\n"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["dag.cycle", "ref.template"]
