"""orchestrator.plan.splice: values placed in shell / Python code are printed, never run.

Every shell case runs the rendered code in a real ``bash``/``dash`` with the hoisted variables in
its environment and checks the output byte for byte and that no marker file appeared.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.plan.splice import SpliceError, py_escape, render
from orchestrator.spec.pyctx import python_holes
from orchestrator.spec.shellctx import (
    ANSI,
    DQUOTE,
    HEREDOC,
    LITERAL,
    SQUOTE,
    WORD,
    shell_holes,
)


def payloads(marker: Path) -> list[str]:
    m = str(marker)
    return [f"x; touch {m}", f"$(touch {m})", f"`touch {m}`", f"' ; touch {m} ; '", f'" ; touch {m} ; "',
            f"\n touch {m}", f"a\\\" ; touch {m} ; \\\"", f"$'\\x41' ; touch {m}", "--lr 0.1 --epochs 3",
            "", "* ? [a]", "${HOME} $PATH", "é ☃ \t tab"]


SHELLS = [s for s in ("bash", "dash") if shutil.which(s)]


def run_shell(shell: str, code: str, value: str, tmp: Path, extra: list[str] | None = None) -> str:
    rendered = render([shell, "-c"], [code, *(extra or [])], None, lambda ex: value, set(os.environ), "t")
    if "<<'" not in code:  # the value itself is never shell text (a quoted here-document is not code)
        assert len(value) < 4 or value not in rendered.argv[2]
    p = subprocess.run(rendered.argv, env={**os.environ, **rendered.env}, cwd=tmp, capture_output=True, text=True,
                       timeout=10, check=False)
    return p.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_every_quoting_context_prints_the_value_and_runs_nothing(shell: str, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    code = ("printf 'dq[%s]\\n' \"{{inputs.parameters.v}}\"; "
            "printf 'sq[%s]\\n' '{{inputs.parameters.v}}'; "
            "printf 'mix[%s]\\n' \"a'{{inputs.parameters.v}}'b\"; "
            "printf 'cat[%s]\\n' pre'{{inputs.parameters.v}}'post; "
            "printf 'sub[%s]\\n' \"$(printf '%s' \"{{inputs.parameters.v}}\")\"; "
            "# a comment {{inputs.parameters.v}}\n"
            "printf 'n[%s]\\n' \"$(set -f; set -- {{inputs.parameters.v}}; echo $#)\"")
    for value in payloads(marker):
        out = run_shell(shell, code, value, tmp_path)
        for label in ("dq", "sq", "cat"):
            want = value if label != "cat" else f"pre{value}post"
            assert f"{label}[{want}]\n" in out, (value, out)
        assert f"mix[a'{value}'b]\n" in out
        assert f"sub[{value}]" in out
        assert f"n[{len(value.split())}]" in out  # unquoted: split into words like Argo's splice
        assert not marker.exists(), value


def test_bash_ansi_quote_heredocs_and_word_splitting(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    code = ("printf 'ansi[%s]\\n' $'\\x41{{inputs.parameters.v}}'\n"
            "cat <<EOF\nhd[{{inputs.parameters.v}}]\nEOF\n"
            "cat <<'EOF'\nlit[{{inputs.parameters.v}}]\nEOF\n"
            "for w in {{inputs.parameters.v}}; do printf 'w[%s]\\n' \"$w\"; done")
    for value in payloads(marker):
        if value == "* ? [a]":
            continue  # unquoted globs expand as in Argo's textual splice; not what this test is about
        try:
            out = run_shell("bash", code, value, tmp_path)
        except SpliceError:
            assert "\n" in value  # only a line that could end the quoted here-document is refused
            continue
        assert f"ansi[A{value}]\n" in out
        assert f"hd[{value}]\n" in out and f"lit[{value}]\n" in out
        assert [line[2:-1] for line in out.splitlines() if line.startswith("w[")] == value.split()
        assert not marker.exists(), value
    out = run_shell("bash", code, "--lr 0.1 --epochs 3", tmp_path)
    assert "w[--lr]\nw[0.1]\nw[--epochs]\nw[3]\n" in out


def test_quoted_heredoc_refuses_a_value_that_would_end_it(tmp_path: Path) -> None:
    code = "cat <<'EOF'\n{{inputs.parameters.v}}\nEOF\necho after"
    with pytest.raises(SpliceError, match="would end its here-document"):
        run_shell("bash", code, f"x\nEOF\ntouch {tmp_path / 'M'}", tmp_path)
    assert run_shell("bash", code, "a\n EOF \nb", tmp_path) == "a\n EOF \nb\nafter\n"


def test_arithmetic_contexts_take_only_numbers(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = f"a[$(touch {marker})]"
    for code in ("echo $(( {{inputs.parameters.n}} + 1 ))", "(( x = {{inputs.parameters.n}} )); echo $x",
                 "let y={{inputs.parameters.n}}; echo $y", "[[ {{inputs.parameters.n}} -eq 3 ]] && echo three",
                 "a=(1 2 3 4 5); echo ${a[{{inputs.parameters.n}}]}", "declare -i z={{inputs.parameters.n}}; echo $z"):
        with pytest.raises(SpliceError, match="must be a number"):
            run_shell("bash", code, evil, tmp_path)
        assert run_shell("bash", code, "3", tmp_path).strip() in ("4", "3", "three")
    assert not marker.exists()
    # a string comparison is not arithmetic: any value is fine there
    assert run_shell("bash", '[[ "{{inputs.parameters.n}}" == "a b" ]] && echo same', "a b", tmp_path) == "same\n"


def test_positional_arguments_after_the_code_are_plain_argv(tmp_path: Path) -> None:
    value = f"$(touch {tmp_path / 'M'})"
    out = run_shell("bash", 'printf "[%s]" "$1"', value, tmp_path, ["name", "{{inputs.parameters.v}}"])
    assert out == f"[{value}]" and not (tmp_path / "M").exists()


def test_hoisted_names_skip_taken_ones_and_repeat_per_expression() -> None:
    r = render(["sh", "-c"], ["echo {{inputs.parameters.a}} {{inputs.parameters.b}} {{inputs.parameters.a}}"], None,
               lambda ex: ex[-1], {"ORCH_P_0", "ORCH_P_2"}, "t")
    assert r.argv[2] == "echo ${ORCH_P_1} ${ORCH_P_3} ${ORCH_P_1}"
    assert r.env == {"ORCH_P_1": "a", "ORCH_P_3": "b"}


def test_non_code_words_and_non_shell_programs_get_the_plain_value() -> None:
    r = render(["python3", "train.py"], ["--lr", "{{inputs.parameters.lr}}", "x={{inputs.parameters.lr}}"], None,
               lambda ex: "0.1; rm -rf /", set(), "t")
    assert r.argv == ["python3", "train.py", "--lr", "0.1; rm -rf /", "x=0.1; rm -rf /"] and r.env == {}


def test_contexts_reported_by_the_shell_lexer() -> None:
    code = ("echo {{a}} \"{{b}}\" '{{c}}' $'{{d}}' \"${X:-{{e}}}\" $(( {{f}} ))\n"
            "cat <<EOF\n{{g}}\nEOF\ncat <<-'END'\n\t{{h}}\n\tEND\n")
    got = {h.expr: (h.context, h.numeric) for h in shell_holes(code)}
    assert got == {"a": (WORD, False), "b": (DQUOTE, False), "c": (SQUOTE, False), "d": (ANSI, False),
                   "e": (DQUOTE, False), "f": (WORD, True), "g": (HEREDOC, False), "h": (LITERAL, False)}


# ------------------------------------------------------------------ python

PY_PAYLOADS = ["x'); import os; os.system('touch M'); ('", 'x"); __import__("os"); ("', "a\\", "\\n",
               "line1\nline2\r\n", "{x} {{y}} }", "\x00\x1b é ☃ \U0001f600", "'''\"\"\"", "\u2028"]


@pytest.mark.parametrize("literal", ["'{}'", '"{}"', "'''{}'''", '"""{}"""', "r'{}'", 'R"""{}"""', "u'{}'",
                                     "f'{}'", "rf'{}'", "b'{}'", "rb'{}'"])
def test_python_literals_get_the_value_exactly(literal: str) -> None:
    code = "x = " + literal.format("<{{inputs.parameters.v}}>")
    for value in PY_PAYLOADS:
        r = render(["python3", "-c"], [code], None, lambda ex, v=value: v, set(), "t")
        tree = ast.parse(r.argv[2])
        got = eval(compile(ast.Expression(tree.body[0].value), "<x>", "eval"))  # literals only
        want = f"<{value}>".encode() if "b" in literal.lower() else f"<{value}>"
        assert got == want, (literal, value, r.argv[2])


def test_python_value_outside_a_literal_is_refused_and_platform_values_are_not() -> None:
    for code in ("x = {{inputs.parameters.v}}", "f'{ {{inputs.parameters.v}} }'", "'a\\{{inputs.parameters.v}}'"):
        with pytest.raises(SpliceError, match="inputs.parameters.v"):
            render(["python3", "-c"], [code], None, lambda ex: "1", set(), "t")
    r = render(["python3"], [], "open({{inputs.artifacts.data.path}})  # {{inputs.parameters.v}}\n", lambda ex: (
        "'/p'" if "artifacts" in ex else "a\nimport os"), set(), "t")
    assert r.script == "open('/p')  # a\\nimport os\n"


def test_python_script_runs_and_prints_payloads_verbatim(tmp_path: Path) -> None:
    marker = tmp_path / "M"
    source = ("import sys\nprint('sq[{{inputs.parameters.v}}]')\nprint(\"dq[{{inputs.parameters.v}}]\")\n"
              "print(f'f[{{inputs.parameters.v}}] {len(sys.argv)}')\nprint(r'r[{{inputs.parameters.v}}]')\n")
    for value in [f"'); open('{marker}', 'w'); print('", f'"); open("{marker}", "w"); print("', "a\\b {x}"]:
        r = render(["python3"], [], source, lambda ex, v=value: v, set(), "t")
        script = tmp_path / "s.py"
        script.write_text(r.script or "")
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=10,
                             check=False).stdout
        assert out == f"sq[{value}]\ndq[{value}]\nf[{value}] 1\nr[{value}]\n"
        assert not marker.exists()


def test_other_interpreters_refuse_user_values() -> None:
    with pytest.raises(SpliceError, match="node code"):
        render(["node", "-e"], ["console.log('{{inputs.parameters.v}}')"], None, lambda ex: "x", set(), "t")
    r = render(["node", "-e"], ["console.log('{{workflow.name}}')"], None, lambda ex: "wf", set(), "t")
    assert r.argv[2] == "console.log('wf')"


def test_py_escape_has_no_line_breaks_and_python_lexer_contexts() -> None:
    assert "\n" not in py_escape("a\nb\r\u2028") and py_escape("{", braces=True) == "{{"
    holes = python_holes("x = '{{a}}'  # {{b}}\ny = {{c}} + f\"{ {{d}} }{{e}}\"\n")
    assert [(h.expr, h.context) for h in holes] == [("a", "string"), ("b", "comment"), ("c", "code"),
                                                    ("d", "code"), ("e", "string")]


@pytest.mark.parametrize("code", ['eval "echo {{inputs.parameters.v}}"', "bash -c 'echo {{inputs.parameters.v}}'",
                                  'sudo -n sh -ec "echo {{inputs.parameters.v}}"',
                                  'bash -c "$(echo {{inputs.parameters.v}})"',
                                  "python3 -c 'print(\"{{inputs.parameters.v}}\")'",
                                  "xargs -0 sh -c 'echo {{inputs.parameters.v}}'"])
def test_code_parsed_again_refuses_user_values(code: str, tmp_path: Path) -> None:
    assert [h.reparsed for h in shell_holes(code)] == [True]
    with pytest.raises(SpliceError, match="parses again"):
        run_shell("bash", code, f"x; touch {tmp_path / 'M'}", tmp_path)
    render(["bash", "-c"], [code.replace("inputs.parameters.v", "workflow.name")], None, str, set(), "t")


@pytest.mark.parametrize("code", ["bash -c 'echo \"$1\"' _ \"{{inputs.parameters.v}}\"",
                                  "python3 train.py -c {{inputs.parameters.v}}", "echo -e {{inputs.parameters.v}}",
                                  "grep -e {{inputs.parameters.v}} f", "evaluate {{inputs.parameters.v}}"])
def test_arguments_after_nested_code_are_not_parsed_again(code: str) -> None:
    assert [h.reparsed for h in shell_holes(code)] == [False]


def test_python_literal_that_a_call_runs_as_code_refuses_user_values(tmp_path: Path) -> None:
    for code in ('import os; os.system("echo {{inputs.parameters.v}}")', "eval('1+{{inputs.parameters.v}}')",
                 'import subprocess; subprocess.run("echo {{inputs.parameters.v}}", shell=True)'):
        with pytest.raises(SpliceError, match="runs as code"):
            render(["python3", "-c"], [code], None, lambda ex: "1", set(), "t")
    safe = 'import subprocess; subprocess.run(["echo", "{{inputs.parameters.v}}"])'
    value = f"; touch {tmp_path / 'M'}"
    r = render(["python3", "-c"], [safe], None, lambda ex: value, set(), "t")
    out = subprocess.run([sys.executable, "-c", r.argv[2]], capture_output=True, text=True, check=True).stdout
    assert out == value + "\n" and not (tmp_path / "M").exists()
    r = render(["python3", "-c"], ['import os; os.system("cat {{inputs.artifacts.a.path}}")'], None,
               lambda ex: "/p/it's", set(), "t")
    assert r.argv[2] == 'import os; os.system("cat /p/it\\\'s")'  # platform values: escaped, allowed
