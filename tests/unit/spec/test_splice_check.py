"""orchestrator.spec.splice: a user value spliced where it would be code is refused at validation."""

from __future__ import annotations

import textwrap

import pytest

from orchestrator.spec.interp import inline_code
from orchestrator.spec.splice import check_code_splices, is_user_value
from orchestrator.spec.yamlsafe import load_bytes
from tests.conftest import template


def doc_of(templates: str):  # type: ignore[no-untyped-def]
    text = template("splice", templates, params="- name: lr\n  value: '0.1'")
    docs, errs = load_bytes(text.encode(), "t.yaml")
    assert not errs
    return text, docs[0]


def leaf(body: str) -> str:
    return "- name: main\n  inputs: {parameters: [{name: p, value: x}]}\n" + textwrap.indent(textwrap.dedent(body), "  ")


def test_python_script_outside_a_literal_names_template_and_parameter() -> None:
    text, doc = doc_of(leaf("""\
        script:
          image: python:3.11
          command: [python3]
          source: |
            import os
            lr = {{inputs.parameters.p}}
            print("{{inputs.parameters.p}}", '{{workflow.parameters.lr}}')  # fine: inside literals
            """))
    errs = check_code_splices(doc)
    assert [e.rule for e in errs] == ["security.code-splice"]
    e = errs[0]
    assert e.severity == "error" and e.pointer == "/spec/templates/0/script/source"
    assert "template 'main'" in e.message and "parameter 'p'" in e.message and "outside a string literal" in e.message
    assert 'os.environ["P"]' in e.hint and 'value: "{{inputs.parameters.p}}"' in e.hint
    source_line = next(n for n, line in enumerate(text.splitlines(), 1) if line.strip() == "source: |")
    assert e.line == source_line  # located at the source value


@pytest.mark.parametrize("code, bad", [
    ("print({{workflow.parameters.lr}})", True),
    ("print(f'{ {{inputs.parameters.p}} }')", True),  # an f-string field is code
    ("print('a\\\\{{inputs.parameters.p}}')", False),  # an escaped backslash: the value starts fresh
    ("print('a\\{{inputs.parameters.p}}')", True),  # right after a backslash: it would escape the quote
    ("print('{{inputs.parameters.p}}')", False),
    ("print(f'lr={{inputs.parameters.p}}')", False),
    ("open({{inputs.artifacts.x.path}})  # platform value", False),
    ("x = 1  # {{inputs.parameters.p}}", False),
    ("import os; os.system('ls {{inputs.parameters.p}}')", True),  # a literal that a call runs is code
    ("import subprocess as s; s.run(['ls', '{{inputs.parameters.p}}'])", False),
])
def test_python_dash_c(code: str, bad: bool) -> None:
    _, doc = doc_of(leaf(f"""\
        container:
          image: python:3.11
          command: [python3, -u, -c]
          args: [{code!r}]
        """).replace("{{inputs.artifacts.x.path}}", "{{workflow.name}}"))
    errs = check_code_splices(doc)
    assert bool(errs) == bad, errs
    if bad:
        assert errs[0].pointer == "/spec/templates/0/container/args/0"


def test_shell_code_is_never_refused_and_other_interpreters_are() -> None:
    _, doc = doc_of(leaf("""\
        container:
          image: alpine
          command: [sh, -c, "echo {{inputs.parameters.p}} '{{inputs.parameters.p}}'"]
        """))
    assert check_code_splices(doc) == []
    _, doc = doc_of(leaf("""\
        script:
          image: alpine
          command: [bash]
          source: |
            echo "{{inputs.parameters.p}}"
            eval "run {{inputs.parameters.p}}"
        """))
    errs = check_code_splices(doc)
    assert len(errs) == 1 and "parses again" in errs[0].message and "$1" in errs[0].hint
    _, doc = doc_of(leaf("""\
        container:
          image: node:20
          command: [node, -e]
          args: ["console.log('{{inputs.parameters.p}}')"]
        """))
    errs = check_code_splices(doc)
    assert len(errs) == 1 and "node code" in errs[0].message and "process.env.P" in errs[0].hint
    _, doc = doc_of(leaf("""\
        script:
          image: perl
          command: [perl]
          source: "print '{{workflow.name}}'"
        """))
    assert check_code_splices(doc) == []  # platform values may go anywhere


def test_inline_code_finds_the_code_word() -> None:
    assert inline_code(["bash", "-euo", "pipefail", "-c", "x", "name"]).index == 4  # type: ignore[union-attr]
    assert inline_code(["/usr/bin/env", "-i", "A=1", "sh", "-c", "x"]).index == 5  # type: ignore[union-attr]
    assert inline_code(["python3", "-W", "ignore", "-c", "x"]).index == 4  # type: ignore[union-attr]
    code = inline_code(["python3", "-uc", "print(1)"])
    assert code is not None and code.index == 2 and code.offset == 0
    code = inline_code(["python3", "-cprint(1)"])
    assert code is not None and code.index == 1 and code.offset == 2
    for argv in (["bash", "script.sh", "-c", "x"], ["python3", "-m", "mod", "-c"], ["python3", "t.py"], ["sh"]):
        assert inline_code(argv) is None, argv


def test_which_placeholders_carry_a_parameter() -> None:
    for ex in ("inputs.parameters.p", "workflow.parameters.lr"):
        assert is_user_value(ex)
    for ex in ("item", "item.a", "workflow.name", "inputs.artifacts.x.path", "outputs.parameters.o.path"):
        assert not is_user_value(ex)
