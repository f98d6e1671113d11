"""templateRef / workflowTemplateRef: linked against the WorkflowTemplates validated together or beside the file."""

from __future__ import annotations

from pathlib import Path

from orchestrator.spec import library_files, validate_paths, validate_text


def doc(name: str, spec: str, scenario: str = "demo") -> str:
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: {name}
  labels: {{scenarios.ai.sap.com/id: {scenario}, ai.sap.com/version: "1"}}
  annotations: {{scenarios.ai.sap.com/name: Demo, executables.ai.sap.com/name: {name}}}
spec:
{spec}"""


LIB = doc("lib-tmpl", """\
  templates:
  - name: echo
    inputs: {parameters: [{name: msg}]}
    outputs: {parameters: [{name: said, valueFrom: {path: /tmp/said}}]}
    container: {image: alpine, command: [sh, -c], args: ['echo "$MSG" > /tmp/said'],
                env: [{name: MSG, value: "{{inputs.parameters.msg}}"}]}
  - name: twice
    steps:
    - - {name: one, template: echo, arguments: {parameters: [{name: msg, value: "1.10"}]}}
""")

USER = doc("user-tmpl", """\
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: a
        templateRef: {name: lib-tmpl, template: echo}
        arguments: {parameters: [{name: msg, value: hi}]}
    - - name: b
        templateRef: {name: lib-tmpl, template: twice}
    - - name: c
        template: show
        arguments: {parameters: [{name: v, value: "{{steps.a.outputs.parameters.said}}"}]}
  - name: show
    inputs: {parameters: [{name: v}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.v}}"]}
""")


def write(tmp_path: Path, **files: str) -> dict[str, Path]:
    out = {}
    for name, text in files.items():
        out[name] = tmp_path / f"{name}.yaml"
        out[name].write_text(text, encoding="utf-8")
    return out


def rules(res: object) -> list[str]:
    return sorted(e.rule for e in getattr(res, "errors"))


def test_a_reference_links_the_template_and_what_it_calls_from_the_folder(tmp_path: Path) -> None:
    f = write(tmp_path, lib=LIB, user=USER)
    res = validate_paths([str(f["user"])])  # the library is found beside the file, not reported on
    assert res.errors == [], [e.format() for e in res.errors]
    assert [w.rule for w in res.warnings] == ["templateref.unconfirmed"]  # once per referenced template
    assert "AI Core" in res.warnings[0].message and res.warnings[0].line == 13
    (wf,) = res.workflows
    steps = wf.templates["main"].steps
    assert steps is not None and [c.template for g in steps for c in g] == ["lib-tmpl:echo", "lib-tmpl:twice", "show"]
    inner = wf.templates["lib-tmpl:twice"].steps
    assert inner is not None and inner[0][0].template == "lib-tmpl:echo"  # the library's own call follows
    assert inner[0][0].parameters[0].value == "1.10"  # the source text of the library's scalar


def test_unknown_names_templates_and_other_scenarios_are_located_errors(tmp_path: Path) -> None:
    f = write(tmp_path, lib=LIB.replace("scenarios.ai.sap.com/id: demo", "scenarios.ai.sap.com/id: other"),
              user=USER.replace("template: twice", "template: twise"))
    res = validate_paths([str(f["user"])])
    assert set(rules(res)) == {"templateref.scenario"}
    f = write(tmp_path, lib=LIB, user=USER.replace("template: twice", "template: twise"))
    res = validate_paths([str(f["user"])])
    (err,) = res.errors
    assert err.rule == "templateref.unknown" and "twice" in err.hint and err.line == 16
    (tmp_path / "lib.yaml").unlink()
    res = validate_paths([str(f["user"])])
    assert set(rules(res)) == {"templateref.unknown"} and res.errors[0].pointer.endswith("/templateRef/name")


def test_an_invalid_library_is_refused_at_the_reference(tmp_path: Path) -> None:
    f = write(tmp_path, lib=LIB.replace("template: echo", "template: nope"), user=USER)
    res = validate_paths([str(f["user"])])
    assert "templateref.invalid" in rules(res)
    assert any("nope" in e.message for e in res.errors if e.rule == "templateref.invalid")


def test_a_library_without_entrypoint_validates_with_a_warning() -> None:
    res = validate_text(LIB.encode(), "lib.yaml")
    assert res.errors == [] and [w.rule for w in res.warnings] == ["template.library"]
    assert res.workflows[0].entrypoint == ""


def test_workflow_template_ref_merges_the_spec_under_the_own_fields(tmp_path: Path) -> None:
    base = doc("base-tmpl", """\
  entrypoint: show
  arguments: {parameters: [{name: v, value: base}, {name: w, value: kept}]}
  templates:
  - name: show
    inputs: {parameters: [{name: v}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.v}} {{workflow.parameters.w}}"]}
""")
    ref = doc("ref-tmpl", """\
  arguments: {parameters: [{name: v, value: mine}]}
  workflowTemplateRef: {name: base-tmpl}
""")
    f = write(tmp_path, base=base, ref=ref)
    res = validate_paths([str(f["ref"])])
    assert res.errors == [], [e.format() for e in res.errors]
    (wf,) = res.workflows
    assert wf.entrypoint == "show" and [(p.name, p.default) for p in wf.parameters] == [("v", "mine"), ("w", "kept")]


def test_library_files_are_what_a_stored_executable_needs(tmp_path: Path) -> None:
    f = write(tmp_path, lib=LIB, user=USER, other=doc("unrelated", "  templates: []\n"))
    lib = library_files(str(f["user"]), f["user"].read_bytes())
    assert [Path(p).name for p, _t in lib] == ["lib.yaml"]
    (tmp_path / "lib.yaml").unlink()  # the folder is gone: the stored texts still link
    res = validate_text(f["user"].read_bytes(), "user.yaml", lib)
    assert res.errors == [] and res.workflows[0].templates["lib-tmpl:echo"].container is not None


def test_a_symlinked_sibling_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "lib.yaml").write_text(LIB, encoding="utf-8")
    here = tmp_path / "here"
    here.mkdir()
    f = write(here, user=USER)
    (here / "lib.yaml").symlink_to(outside / "lib.yaml")
    res = validate_paths([str(f["user"])])
    assert set(rules(res)) == {"templateref.unknown"}  # the link is skipped, as if the library were absent
    (here / "lib.yaml").unlink()
    (here / "lib.yaml").write_text(LIB, encoding="utf-8")  # the same text as a plain file links
    res = validate_paths([str(f["user"])])
    assert res.errors == [], [e.format() for e in res.errors]
